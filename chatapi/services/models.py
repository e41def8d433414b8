"""The models a conversation may use and what each can do, from configuration alone (no call
to the provider): GLM_MODELS, in its order, with the figures `config.derive` worked out."""


def listing(config):
    figures = config["GLM_MODEL_FIGURES"]
    return {"models": [{"id": model, **figures[model], "default": index == 0}
                       for index, model in enumerate(config["GLM_MODELS"])]}
