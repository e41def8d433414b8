"""The GLM simulator, driven through the real zhipuai SDK as ChatAPI drives GLM."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from zhipuai import ZhipuAI
from zhipuai.core import _errors

from tests.glm_simulator import DEFAULT_REPLY
from tests.simulator_client import running_simulator, wait_for

MODEL = "glm-5"


@pytest.fixture(scope="session")
def sim():
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture
def glm(sim):
    sim.reset()
    return ZhipuAI(api_key="test", base_url=sim.base_url, max_retries=0)


def ask(client, content, **options):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **options)


def stream(client, content, **options):
    return list(ask(client, content, stream=True, **options))


def text_of(chunks, field="content"):
    return "".join(getattr(chunk.choices[0].delta, field) or "" for chunk in chunks)


def finish_reasons(chunks):
    return [chunk.choices[0].finish_reason for chunk in chunks]


def test_default_reply_streams_in_chunks_ending_with_finish_and_usage(glm):
    chunks = stream(glm, "你好")
    assert len(chunks) > 1
    assert text_of(chunks) == DEFAULT_REPLY
    assert {chunk.choices[0].delta.role for chunk in chunks} == {"assistant"}
    assert finish_reasons(chunks) == [None] * (len(chunks) - 1) + ["stop"]
    assert [chunk.usage is not None for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    usage = chunks[-1].usage
    assert usage.completion_tokens == len(chunks)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert chunks[0].model == MODEL


def test_default_reply_without_streaming(glm):
    completion = ask(glm, "你好")
    choice = completion.choices[0]
    assert choice.message.content == DEFAULT_REPLY
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_reply_and_chunk_count_are_chosen_by_markers(glm):
    assert text_of(stream(glm, "[[reply:abcdef]] [[chunks:2]]")) == "abcdef"
    assert [c.choices[0].delta.content for c in stream(glm, "[[chunks:3]]")] == [
        "w0 ", "w1 ", "w2 "]
    assert text_of(stream(glm, "[[reply:ab]] [[chunks:4]]")) == "abw2 w3 "


def test_delay_spreads_chunks_in_time(glm):
    started = time.monotonic()
    arrivals = [time.monotonic() - started
                for _ in ask(glm, "[[chunks:5]] [[delay:100]]", stream=True)]
    assert len(arrivals) == 5
    # Chunk i is due 100 ms × (i + 1) after the request: never earlier. (Gaps between two
    # arrivals are no test: a simulator held up by a busy machine catches up on its schedule.)
    assert all(arrival >= 0.1 * (index + 1) - 0.01 for index, arrival in enumerate(arrivals))


def test_thinking_chunks_come_first_only_when_thinking_is_enabled(glm):
    chunks = stream(glm, "[[think:3]] [[reply:答案]]", thinking={"type": "enabled"})
    reasoning = [c.choices[0].delta.reasoning_content for c in chunks]
    assert reasoning[:3] == ["t0 ", "t1 ", "t2 "]
    assert text_of(chunks[:3]) == ""
    assert text_of(chunks) == "答案"
    disabled = stream(glm, "[[think:3]] [[reply:答案]]", thinking={"type": "disabled"})
    assert text_of(disabled, "reasoning_content") == ""


def test_one_tool_call_arrives_whole_in_the_last_chunk(glm):
    chunks = stream(glm, '算一下 [[tool:calculator {"expression": "2+2"}]]')
    last = chunks[-1].choices[0]
    assert last.finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    [call] = last.delta.tool_calls
    assert (call.index, call.type, call.function.name) == (0, "function", "calculator")
    assert call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"expression": "2+2"}
    assert all(c.choices[0].delta.tool_calls is None for c in chunks[:-1])


def test_several_tool_calls_share_one_delta_with_indexes(glm):
    chunks = stream(glm, '[[tool:a {"x": 1}]] [[tool:b {}]] [[tool:c {"y": [2]}]]')
    calls = chunks[-1].choices[0].delta.tool_calls
    assert [(c.index, c.function.name) for c in calls] == [(0, "a"), (1, "b"), (2, "c")]
    assert len({c.id for c in calls}) == 3
    assert json.loads(calls[2].function.arguments) == {"y": [2]}


def test_tool_call_without_streaming_has_null_content(glm):
    message = ask(glm, '[[tool:calculator {"expression": "1"}]]').choices[0].message
    assert message.content is None
    assert message.tool_calls[0].function.name == "calculator"
    assert ask(glm, "[[tool:calculator {}]]").choices[0].finish_reason == "tool_calls"


def test_tool_stream_sends_argument_fragments_to_merge_by_index(glm):
    arguments = '{"expression": "12345 * 678", "precision": 2}'
    chunks = stream(glm, f"[[tool:calculator {arguments}]] [[tool:clock {{}}]] [[tool_stream]]")
    merged = {}
    for chunk in chunks:
        for piece in chunk.choices[0].delta.tool_calls or []:
            call = merged.setdefault(piece.index, {"id": piece.id, "arguments": ""})
            call["arguments"] += piece.function.arguments
    assert len([c for c in chunks if c.choices[0].delta.tool_calls]) > 2
    assert json.loads(merged[0]["arguments"]) == json.loads(arguments)
    assert merged[1]["arguments"] == "{}"
    assert merged[0]["id"].startswith("call_")
    assert finish_reasons(chunks)[-1] == "tool_calls"


def follow_up(client, content, result):
    first = ask(client, content).choices[0].message
    call = first.tool_calls[0]
    messages = [
        {"role": "user", "content": content},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": result}]
    return client.chat.completions.create(model=MODEL, messages=messages)


def test_tool_results_round_answers_text_with_the_results(glm):
    second = follow_up(glm, '[[tool:calculator {"expression": "2+2"}]]', '{"value": 4}')
    assert second.choices[0].message.content == '结果：{"value": 4}'
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None


def test_tool_every_round_calls_again_after_results(glm):
    second = follow_up(glm, '[[tool_every_round:search {"q": "x"}]]', "[]")
    assert second.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.tool_calls[0].function.name == "search"


def test_bad_args_gives_arguments_that_are_not_json(glm):
    call = stream(glm, "[[bad_args:calculator]]")[-1].choices[0].delta.tool_calls[0]
    assert call.function.name == "calculator"
    with pytest.raises(ValueError):
        json.loads(call.function.arguments)


ERRORS = [(400, "1214", _errors.APIRequestFailedError),
          (401, "1000", _errors.APIAuthenticationError),
          (429, "1302", _errors.APIReachLimitError),
          (500, "500", _errors.APIInternalError),
          (503, "1305", _errors.APIServerFlowExceedError)]


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("status, code, error", ERRORS)
def test_http_errors_raise_the_sdk_exception_before_any_chunk(glm, status, code, error, streaming):
    with pytest.raises(error) as raised:
        ask(glm, f"[[http:{status}]]", stream=streaming)
    assert raised.value.status_code == status
    assert raised.value.response.json()["error"]["code"] == code


def test_error_code_can_be_chosen(glm):
    with pytest.raises(_errors.APIReachLimitError) as raised:
        ask(glm, "[[http:429]] [[code:1113]]", stream=True)
    assert raised.value.response.json()["error"]["code"] == "1113"


@pytest.mark.slow
def test_configured_api_key_rejects_other_keys():
    with running_simulator(api_key="right-key") as simulator:
        wrong = ZhipuAI(api_key="wrong-key", base_url=simulator.base_url, max_retries=0)
        with pytest.raises(_errors.APIAuthenticationError):
            ask(wrong, "hi")
        right = ZhipuAI(api_key="right-key", base_url=simulator.base_url, max_retries=0)
        assert ask(right, "hi").choices[0].message.content == DEFAULT_REPLY


def test_drop_cuts_the_stream_with_an_httpx_error(glm):
    received = []
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        for chunk in ask(glm, "[[chunks:5]] [[drop:2]]", stream=True):
            received.append(chunk)
    assert len(received) == 2


def test_drop_without_streaming_is_a_connection_error(glm):
    with pytest.raises(_errors.APIConnectionError):
        ask(glm, "[[drop:0]]")


def test_stall_trips_a_short_read_timeout(glm, sim):
    impatient = ZhipuAI(api_key="test", base_url=sim.base_url, max_retries=0,
                        timeout=httpx.Timeout(0.3, connect=2))
    started = time.monotonic()
    with pytest.raises((httpx.TimeoutException, _errors.APITimeoutError)):
        stream(impatient, "[[stall:30]]")
    with pytest.raises((httpx.TimeoutException, _errors.APITimeoutError)):
        stream(impatient, "[[chunks:3]] [[stall:30]] [[stall_after:1]]")
    # The stalls would last a minute: well before is the read timeout at work.
    assert time.monotonic() - started < 15


def test_no_finish_ends_cleanly_without_a_finish_reason(glm):
    chunks = stream(glm, "[[no_finish]] [[chunks:3]]")
    assert len(chunks) == 3
    assert finish_reasons(chunks) == [None, None, None]
    assert all(chunk.usage is None for chunk in chunks)


def test_finish_reason_can_be_chosen(glm):
    assert finish_reasons(stream(glm, "[[finish:length]]"))[-1] == "length"
    assert ask(glm, "[[finish:sensitive]]").choices[0].finish_reason == "sensitive"


def test_max_tokens_cuts_a_longer_reply_with_finish_reason_length(glm):
    chunks = stream(glm, "[[chunks:5]]", max_tokens=3)
    assert text_of(chunks) == "w0 w1 w2 " and finish_reasons(chunks)[-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3
    whole = ask(glm, "[[chunks:5]] [[delay:100]]", max_tokens=2)
    assert whole.choices[0].message.content == "w0 w1 " and whole.usage.completion_tokens == 2
    assert whole.choices[0].finish_reason == "length"
    assert finish_reasons(stream(glm, "[[chunks:3]]", max_tokens=3))[-1] == "stop"


def test_echo_replies_with_the_request_body_as_received(glm, sim):
    chunks = stream(glm, "[[echo]]", temperature=1.0, thinking={"type": "enabled"})
    echoed = json.loads(text_of(chunks))
    assert echoed == sim.requests()[-1]["body"]
    assert echoed["temperature"] == 0.99
    assert echoed["thinking"] == {"type": "enabled"}
    assert echoed["messages"] == [{"role": "user", "content": "[[echo]]"}]


def test_web_search_returns_deterministic_results(glm):
    first = glm.web_search.web_search(search_engine="search_std", search_query="杭州天气",
                                      count=3)
    again = glm.web_search.web_search(search_engine="search_std", search_query="杭州天气",
                                      count=3)
    assert len(first.search_result) == 3
    assert first.search_result == again.search_result
    result = first.search_result[0]
    assert "杭州天气" in result.title
    assert result.content and result.link.startswith("https://") and result.publish_date
    assert (result.media, result.refer) == ("模拟媒体", "ref_1")


def test_web_search_errors_by_marker(glm):
    with pytest.raises(_errors.APIInternalError):
        glm.web_search.web_search(search_engine="search_std", search_query="x [[http:500]]")


def test_hang_up_after_three_chunks_is_seen_at_the_next_chunk(glm, sim):
    chunks = ask(glm, "[[chunks:50]] [[delay:200]]", stream=True)
    for _ in zip(range(3), chunks):
        pass
    chunks.response.close()
    closed_at = time.time()
    [hangup] = wait_for(sim.hangups) or [None]
    assert hangup is not None
    assert hangup["chunks_sent"] == 3
    # Well before the stream's 47 remaining chunks (9.4 s) would have ended it.
    assert hangup["noticed_at"] - closed_at < 5


@pytest.mark.slow
def test_two_hundred_concurrent_slow_streams_complete(sim):
    """Each stream stops after its first chunk until all 200 have one: a simulator that served
    them one at a time (2 s each) would hold the last first chunk for minutes and break the
    barrier; one that serves them at once lets every stream through."""
    sim.reset()
    pool = httpx.Client(limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
                        timeout=60)
    client = ZhipuAI(api_key="test", base_url=sim.base_url, max_retries=0, http_client=pool)
    all_open = threading.Barrier(200, timeout=120)

    def one(_):
        chunks = iter(ask(client, "[[chunks:10]] [[delay:200]]", stream=True))
        first = next(chunks)
        all_open.wait()
        return text_of([first, *chunks])

    with ThreadPoolExecutor(max_workers=200) as threads:
        texts = list(threads.map(one, range(200)))
    pool.close()
    assert texts == ["".join(f"w{i} " for i in range(10))] * 200
    assert sim.stats()["total_streams"] == 200


def test_requests_are_logged_in_order_without_the_key(glm, sim):
    ask(glm, "first")
    stream(glm, "second")
    logged = sim.requests()
    assert [entry["body"]["messages"][0]["content"] for entry in logged] == ["first", "second"]
    assert [entry["body"].get("stream") for entry in logged] == [None, True]
    assert logged[0]["path"] == "/api/paas/v4/chat/completions"
    assert logged[0]["headers"]["Authorization"] == "present"
    assert logged[0]["time"] <= logged[1]["time"]
