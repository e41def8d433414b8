"""What each model of GLM_MODELS can take and give (docs/API.md, "Models"): the figures Zhipu
publishes for the models of GLM_MODELS' default, and GLM_MODEL_LIMITS for the others. Worked
out once at start (`config.derive`); a setting that cannot be read stops the service there."""
import re

# Tokens, read as thousands (200K -> 200,000): where Zhipu's "K" means 1,024 this errs small,
# so a trimmed history still fits. The maximum outputs of glm-4.6, glm-4.5 and glm-4.5-air
# could not be read on Zhipu's pages: docs/API.md §8 says where they come from.
BUILT_IN = {
    "glm-5": {"context_window": 200_000, "max_output_tokens": 128_000,
              "supports_thinking": True, "supports_tools": True},
    "glm-4.6": {"context_window": 200_000, "max_output_tokens": 128_000,
                "supports_thinking": True, "supports_tools": True},
    "glm-4.5": {"context_window": 128_000, "max_output_tokens": 96_000,
                "supports_thinking": True, "supports_tools": True},
    "glm-4.5-air": {"context_window": 128_000, "max_output_tokens": 96_000,
                    "supports_thinking": True, "supports_tools": True},
}
# What GLM_MODEL_LIMITS calls each figure.
KEYS = {"context": "context_window", "output": "max_output_tokens",
        "thinking": "supports_thinking", "tools": "supports_tools"}
BOOLEANS = {"yes": True, "true": True, "no": False, "false": False}
# Far above any model's window: a bigger number is a typo (an extra zero or two).
MOST_TOKENS = 100_000_000
EXAMPLE = "context=131072,output=16384,thinking=yes,tools=yes"


class ModelLimitsError(ValueError):
    def __init__(self, problem):
        super().__init__(f"GLM_MODEL_LIMITS: {problem}")


def model_figures(models, setting):
    """{model: its four figures} for every model of `models`, from the built-in figures and
    `setting` (GLM_MODEL_LIMITS, `model:key=value,...;model:...`), which overrides them."""
    configured = parse(setting or "", models)
    figures = {}
    for model in models:
        known = {**BUILT_IN.get(model, {}), **configured.get(model, {})}
        missing = [key for key, name in KEYS.items() if name not in known]
        if missing:
            raise ModelLimitsError(
                f"GLM_MODELS has {model!r}, whose figures are not built in: give "
                f"{', '.join(missing)} (for example '{model}:{EXAMPLE}')")
        if known["max_output_tokens"] > known["context_window"]:
            raise ModelLimitsError(f"{model!r}: output ({known['max_output_tokens']}) is over "
                                   f"its context ({known['context_window']})")
        figures[model] = known
    return figures


def parse(setting, models):
    configured = {}
    for entry in filter(None, (part.strip() for part in setting.split(";"))):
        model, colon, pairs = entry.partition(":")
        model = model.strip()
        if not colon or not model:
            raise ModelLimitsError(f"{entry!r} is not 'model:key=value,...'")
        if model not in models:
            raise ModelLimitsError(f"{model!r} is not one of GLM_MODELS ({', '.join(models)})")
        if model in configured:
            raise ModelLimitsError(f"{model!r} is given twice")
        configured[model] = parse_pairs(model, pairs)
    return configured


def parse_pairs(model, pairs):
    figures = {}
    for pair in filter(None, (part.strip() for part in pairs.split(","))):
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or key not in KEYS:
            raise ModelLimitsError(f"{model!r}: {pair!r} is not one of "
                                   f"{', '.join(key + '=...' for key in KEYS)}")
        if KEYS[key] in figures:
            raise ModelLimitsError(f"{model!r}: {key} is given twice")
        figures[KEYS[key]] = (token_count(model, key, value) if key in ("context", "output")
                              else yes_or_no(model, key, value))
    return figures


def token_count(model, key, value):
    if not re.fullmatch(r"[0-9]+", value) or not 1 <= int(value) <= MOST_TOKENS:
        raise ModelLimitsError(f"{model!r}: {key}={value!r} is not a number of tokens "
                               f"(1 to {MOST_TOKENS:,})")
    return int(value)


def yes_or_no(model, key, value):
    if value.lower() not in BOOLEANS:
        raise ModelLimitsError(f"{model!r}: {key}={value!r} is not yes or no")
    return BOOLEANS[value.lower()]
