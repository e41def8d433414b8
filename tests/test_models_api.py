"""GET /api/models: GLM_MODELS with what each model can take and give, from configuration
alone; GLM_MODEL_LIMITS for models whose figures are not built in."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.timestamps import utcnow

from .conftest import app_config
from .test_chat import chat_requests

URL = "/api/models/"
ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = {
    "glm-5": (200_000, 128_000), "glm-4.6": (200_000, 128_000),
    "glm-4.5": (128_000, 96_000), "glm-4.5-air": (128_000, 96_000),
}


def test_the_default_models_are_listed_in_order_with_their_published_figures(client,
                                                                             auth_headers):
    response = client.get(URL, headers=auth_headers)
    assert response.status_code == 200
    assert response.json["success"] is True
    models = response.json["data"]["models"]
    assert [model["id"] for model in models] == list(PUBLISHED)
    for model in models:
        assert set(model) == {"id", "context_window", "max_output_tokens", "supports_thinking",
                              "supports_tools", "default"}
        assert (model["context_window"], model["max_output_tokens"]) == PUBLISHED[model["id"]]
        assert model["supports_thinking"] is True and model["supports_tools"] is True


def test_only_the_first_model_is_the_default(make_app, auth_headers):
    client = make_app(GLM_MODELS=["glm-4.5-air", "glm-5"]).test_client()
    models = client.get("/api/models", headers=auth_headers).json["data"]["models"]
    assert [(model["id"], model["default"]) for model in models] == [
        ("glm-4.5-air", True), ("glm-5", False)]


def test_the_default_model_is_the_one_a_new_conversation_gets(client, auth_headers):
    models = client.get(URL, headers=auth_headers).json["data"]["models"]
    created = client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]
    assert [model["id"] for model in models if model["default"]] == [created["model"]]


def test_the_list_needs_a_bearer_token(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "unauthorized"


def test_a_model_added_with_its_limits_shows_them(make_app, auth_headers):
    client = make_app(
        GLM_MODELS=["glm-5", "my-model"],
        GLM_MODEL_LIMITS="my-model: context=32768, output=4096, thinking=no, tools=yes",
    ).test_client()
    models = client.get(URL, headers=auth_headers).json["data"]["models"]
    assert models[1] == {"id": "my-model", "context_window": 32768, "max_output_tokens": 4096,
                         "supports_thinking": False, "supports_tools": True, "default": False}


def test_limits_given_for_a_built_in_model_replace_only_the_figures_named(make_app,
                                                                          auth_headers):
    client = make_app(GLM_MODELS=["glm-4.6"],
                      GLM_MODEL_LIMITS="glm-4.6:output=65536;").test_client()
    [model] = client.get(URL, headers=auth_headers).json["data"]["models"]
    assert (model["context_window"], model["max_output_tokens"]) == (200_000, 65536)


def test_the_limits_are_read_from_the_environment(monkeypatch, make_app, auth_headers):
    monkeypatch.setenv("GLM_MODELS", "glm-5,other")
    monkeypatch.setenv("GLM_MODEL_LIMITS", "other:context=8000,output=2000,thinking=yes,"
                                           "tools=no")
    client = make_app().test_client()
    models = client.get(URL, headers=auth_headers).json["data"]["models"]
    assert models[1]["id"] == "other" and models[1]["context_window"] == 8000
    assert models[1]["supports_tools"] is False


@pytest.mark.parametrize("models, setting, message", [
    (["glm-5", "glm-9"], None,
     "GLM_MODEL_LIMITS: GLM_MODELS has 'glm-9', whose figures are not built in: give "
     "context, output, thinking, tools (for example 'glm-9:context=131072,output=16384,"
     "thinking=yes,tools=yes')"),
    (["glm-5", "mine"], "mine:context=32768,output=4096",
     "GLM_MODEL_LIMITS: GLM_MODELS has 'mine', whose figures are not built in: give "
     "thinking, tools"),
    (["glm-5"], "glm-5 context=1000", "GLM_MODEL_LIMITS: 'glm-5 context=1000' is not "
                                      "'model:key=value,...'"),
    (["glm-5"], "glm-6:context=1000", "GLM_MODEL_LIMITS: 'glm-6' is not one of GLM_MODELS "
                                      "(glm-5)"),
    (["glm-5"], "glm-5:context=1000;glm-5:output=10",
     "GLM_MODEL_LIMITS: 'glm-5' is given twice"),
    (["glm-5"], "glm-5:window=1000", "GLM_MODEL_LIMITS: 'glm-5': 'window=1000' is not one "
                                     "of context=..., output=..., thinking=..., tools=..."),
    (["glm-5"], "glm-5:context=32k", "GLM_MODEL_LIMITS: 'glm-5': context='32k' is not a "
                                     "number of tokens (1 to 100,000,000)"),
    (["glm-5"], "glm-5:output=0", "GLM_MODEL_LIMITS: 'glm-5': output='0' is not a number"),
    (["glm-5"], "glm-5:thinking=maybe", "GLM_MODEL_LIMITS: 'glm-5': thinking='maybe' is not "
                                        "yes or no"),
    (["glm-5"], "glm-5:context=4096", "GLM_MODEL_LIMITS: 'glm-5': output (128000) is over "
                                      "its context (4096)"),
])
def test_limits_that_cannot_be_read_stop_the_app_naming_the_bad_part(database_url, models,
                                                                     setting, message):
    with pytest.raises(ValueError) as refused:
        create_app(app_config(database_url, GLM_MODELS=models, GLM_MODEL_LIMITS=setting))
    assert str(refused.value).startswith(message)


def test_a_flask_command_refuses_to_start_with_bad_limits(tmp_path):
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/refused.db",
                   "JWT_SECRET_KEY": "x" * 40, "GLM_MODELS": "glm-5,mine",
                   "GLM_MODEL_LIMITS": "mine:context=lots"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
                            cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "GLM_MODEL_LIMITS: 'mine': context='lots' is not a number of tokens" in result.stderr


def test_history_is_trimmed_to_a_configured_models_context_window(chat_app, auth_headers,
                                                                  glm_simulator):
    chat = chat_app(GLM_MODELS=["glm-5", "small"],
                    GLM_MODEL_LIMITS="small:context=40000,output=4096,thinking=no,tools=no"
                    ).test_client()
    conversation = chat.post("/api/conversations/", json={"model": "small", "max_tokens": 4096},
                             headers=auth_headers).json["data"]
    start = utcnow() - timedelta(hours=1)
    # 40,000 tokens, 4,096 kept for the answer; each message ~10,000 tokens: three fit.
    rows = [Message(id=f"msg_small{i}", parent_id=f"msg_small{i - 1}" if i else None,
                    conversation_id=conversation["id"],
                    role="user" if i % 2 == 0 else "assistant",
                    content=f"<{i}>" + "x" * 20000, status="completed", tool_calls=[],
                    created_at=start + timedelta(seconds=i)) for i in range(10)]
    db.session.add_all(rows)
    db.session.flush()
    db.session.get(Conversation, conversation["id"]).current_message_id = rows[-1].id
    db.session.commit()
    sent = chat.post("/api/messages/", json={"conversation_id": conversation["id"],
                                             "content": "now"}, headers=auth_headers)
    assert sent.status_code == 201, sent.json
    messages = chat_requests(glm_simulator)[-1]["body"]["messages"]
    assert [m["content"][:4] for m in messages[:-1]] == ["<7>x", "<8>x", "<9>x"]
    assert messages[-1] == {"role": "user", "content": "now"}
