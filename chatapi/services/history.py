"""What the model is sent (docs/API.md §4): system prompt, earlier turns replayed in the provider's
shape, trimmed from the oldest end to the model's context budget, then the new message."""
import json
import math

# For a conversation whose model has since left GLM_MODELS (its figures with it): the smallest
# window of the built-in models.
DEFAULT_CONTEXT_TOKENS = 128_000
# Per message, for role and framing.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text):
    """One token per two characters: about right for Chinese, an over-estimate for English
    (~4 characters per token), so the budget errs on the side of fitting."""
    return math.ceil(len(text or "") / 2)


# What json.dumps(value, ensure_ascii=False) writes, without making an encoder for each call.
WIRE_JSON = json.JSONEncoder(ensure_ascii=False).encode


def wire_tokens(wire_message):
    return MESSAGE_OVERHEAD_TOKENS + estimate_tokens(WIRE_JSON(wire_message))


def context_tokens(model_figures, model):
    """The model's context window (`model_figures`: GLM_MODEL_FIGURES, chatapi/model_limits.py)."""
    figures = model_figures.get(model)
    return figures["context_window"] if figures else DEFAULT_CONTEXT_TOKENS


def history_budget(context, max_tokens):
    """What is left for history once the answer's room is reserved (at most half the window,
    so a huge max_tokens never leaves no history at all)."""
    return context - min(max_tokens, context // 2)


def tool_result_text(result, limit):
    text = json.dumps(result, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…(truncated)"


def wire_call(call_id, name, arguments):
    """One tool call as the assistant turn carries it; `arguments` is JSON text."""
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def replay(message, tool_result_chars):
    """One stored message as the provider's messages: an answer that used tools becomes the
    assistant turn with its calls, one tool message per result, then the final text."""
    if message.role != "assistant" or not message.tool_calls:
        return [{"role": message.role, "content": message.content}]
    calls = [wire_call(call["id"], call["name"],
                       json.dumps(call["arguments"], ensure_ascii=False))
             for call in message.tool_calls]
    turn = [{"role": "assistant", "content": None, "tool_calls": calls}]
    turn += [{"role": "tool", "tool_call_id": call["id"],
              "content": tool_result_text(call["result"], tool_result_chars)}
             for call in message.tool_calls]
    if message.content:
        turn.append({"role": "assistant", "content": message.content})
    return turn


def build_wire_messages(*, system_prompt, history, new_content, context, max_tokens,
                        tool_result_chars):
    """`context`: the model's context window, in tokens."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tail = [{"role": "user", "content": new_content}]
    budget = history_budget(context, max_tokens) - sum(map(wire_tokens, head + tail))
    kept = []
    for message in reversed(history):
        turn = replay(message, tool_result_chars)
        cost = sum(map(wire_tokens, turn))
        if cost > budget:
            break
        kept[:0] = turn
        budget -= cost
    return head + kept + tail
