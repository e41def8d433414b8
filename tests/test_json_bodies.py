"""Request bodies must be standard JSON: what Python's json module accepts beyond it, or cannot
read at all, is a 400 in the envelope, never a 500 nor a response that is not JSON."""
import pytest


def post_raw(client, url, json_text, headers):
    return client.post(url, data=json_text, content_type="application/json", headers=headers)


def assert_bad_request(response):
    assert response.status_code == 400
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "bad_request"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1.5e999"])
def test_nan_infinity_and_numbers_beyond_a_double_are_refused(client, auth_headers, constant):
    response = post_raw(client, "/api/tools/json_query/execute",
                        f'{{"data": {{"a": {constant}}}, "expression": "a"}}', auth_headers)
    assert_bad_request(response)
    response = post_raw(client, "/api/conversations/", f'{{"temperature": {constant}}}',
                        auth_headers)
    assert_bad_request(response)


def test_a_body_nested_deeper_than_the_parser_goes_is_400(client, auth_headers):
    response = post_raw(client, "/api/conversations/", '{"a": ' * 100_000 + "1" +
                        "}" * 100_000, auth_headers)
    assert_bad_request(response)


def test_an_integer_with_more_digits_than_python_reads_is_400(client, auth_headers):
    response = post_raw(client, "/api/conversations/", '{"max_tokens": ' + "9" * 5000 + "}",
                        auth_headers)
    assert_bad_request(response)


def test_a_huge_integer_python_reads_is_a_422_where_a_number_is_bounded(client, auth_headers):
    response = post_raw(client, "/api/conversations/",
                        '{"max_tokens": ' + "9" * 4000 + ', "temperature": ' + "9" * 4000 + "}",
                        auth_headers)
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"max_tokens", "temperature"}
