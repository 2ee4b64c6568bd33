"""The JSON Schema of a GAN spec (`cnnbuild schema`): its `gan:` section from the Gan
dataclass, each network inline or a path, the top level's keys."""
from __future__ import annotations

def gan_spec_schema(generator, spec: dict) -> dict:
    """A GAN spec (families/gan/spec.py): its `gan:` section from the Gan dataclass, each network inline
    (a spec's input, layers, blocks, …) or the path of a spec file, and `train:` without the
    keys a GAN does not read. The top level's `blocks:` may be used in both inline networks."""
    from ...views.schema import docs
    from . import spec as gan
    definitions = generator.definitions
    top = spec["properties"]
    optimizers = {"generator_optimizer": "name", "discriminator_optimizer": "name"}
    train = dict(definitions["Train"])
    train["properties"] = {k: v for k, v in train["properties"].items() if k not in gan.NOT_FOR_GAN}
    definitions["GanTrain"] = train
    inputs = {"generator": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "array", "items": {
                  "type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 1}],
                  "description": "filled in as [noise (+ classes when conditional)]; leave it out"},
              "discriminator": {**top["input"], "description": "the image size [height, width, channels]: what the "
                                "generator makes and the data is read at"}}

    def network(role: str, shared_blocks: bool) -> dict:
        name = f"gan_{role}{'_blocks' if shared_blocks else ''}"
        if name not in definitions:
            keys = {key: top[key] for key in gan.NETWORK_KEYS if key in top} | {"input": inputs[role]}
            keys["name"] = {**top["name"], "description": f"the network's name (default: {role})"}
            plain, with_blocks = ({"$ref": f"#/definitions/{layers}"} for layers in ("layers", "layers_blocks"))
            body = {"type": "object", "properties": keys, "required": ["layers"], "additionalProperties": False}
            if shared_blocks:
                body["properties"] = keys | {"layers": with_blocks}
            else:
                body |= {"if": {"required": ["blocks"]}, "then": {"properties": {"layers": with_blocks}},
                         "else": {"properties": {"layers": plain}}}
            definitions[name] = {"anyOf": [body, {"type": "string", "description": f"the path of the {role}'s spec "
                                                  "file, read from this spec's folder"}]}
        return {"$ref": f"#/definitions/{name}"}

    properties = {
        "name": {**top["name"], "description": "the GAN's name (default: gan)"},
        "description": top["description"],
        "gan": generator.dataclass_schema(gan.Gan, shorthands=optimizers),
        # what each network may hold depends on the top level's blocks: below
        "generator": {"description": "G(z): the network making images from noise; inline or a spec file's path"},
        "discriminator": {"description": "D(x): the network scoring images as real; inline or a spec file's path"},
        "params": top["params"], "variants": top["variants"], "blocks": top["blocks"], "data": top["data"], "augment": top["augment"],
        "train": {"anyOf": [{"$ref": "#/definitions/GanTrain"}, {"type": "null"}],
                  "description": "epochs, batch size, seed, …; the optimizers and the loss are in gan:"},
    }
    return {"type": "object", "description": docs(gan.GanSpec)[0] or "A GAN spec.",
            "properties": {key: properties[key] for key in gan.TOP_KEYS},
            "required": ["generator", "discriminator"], "additionalProperties": False,
            # the top level's blocks are shared: with them, both inline networks may use blocks
            "if": {"required": ["blocks"]},
            "then": {"properties": {role: network(role, True) for role in gan.ROLES}},
            "else": {"properties": {role: network(role, False) for role in gan.ROLES}}}
