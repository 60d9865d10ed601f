"""Video generators: image-to-video rollouts from edited frames (diffusers backends) and the
structure-preserving replay. TYPES maps YAML type names to spec classes; see README.md."""

TYPES: dict[str, str] = {
    "wan-i2v": "generators.wan:WanSpec",
    "cosmos-predict2": "generators.cosmos:CosmosSpec",
    "ltx-i2v": "generators.ltx:LTXSpec",
    "cogvideox-i2v": "generators.cogvideox:CogVideoXSpec",
    "svd": "generators.svd:SVDSpec",
    "replay": "generators.replay:ReplaySpec",
}
