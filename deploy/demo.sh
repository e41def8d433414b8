#!/usr/bin/env bash
# A newcomer's first look: the GLM simulator, the service on it, and one streamed answer with a
# tool call, shown with curl. Everything stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SIM_PORT=${SIM_PORT:-9100}
PORT=${DEMO_PORT:-8001}
BASE="http://127.0.0.1:$PORT/api"
mkdir -p instance
export DATABASE_URL="sqlite:///instance/demo.db" ZHIPUAI_API_KEY="demo-key" \
       GLM_BASE_URL="http://127.0.0.1:$SIM_PORT/api/paas/v4" PORT WEB_CONCURRENCY=1 \
       FLASK_APP=wsgi.py LOG_LEVEL=WARNING

cleanup() { kill "$SIM_PID" "$APP_PID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

$BIN/python -m tests.glm_simulator --port "$SIM_PORT" > instance/demo-simulator.log 2>&1 &
SIM_PID=$!
$BIN/flask db upgrade > /dev/null 2>&1
$BIN/gunicorn -c gunicorn.conf.py wsgi:app > instance/demo-service.log 2>&1 &
APP_PID=$!
for _ in $(seq 50); do curl -sf "$BASE/health" > /dev/null && break; sleep 0.2; done

json() { $BIN/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
show() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

show "curl -X POST $BASE/auth/register ..."
curl -s -X POST "$BASE/auth/register" -H 'Content-Type: application/json' \
  -d '{"username": "demo", "email": "demo@example.com", "password": "demo-password"}'; echo
show "curl -X POST $BASE/auth/login ..."
TOKEN=$(curl -s -X POST "$BASE/auth/login" -H 'Content-Type: application/json' \
  -d '{"username": "demo", "password": "demo-password"}' | json '["data"]["access_token"]')
echo "access_token: ${TOKEN:0:24}..."
AUTH="Authorization: Bearer $TOKEN"
show "curl -X POST $BASE/conversations/ -d '{\"title\": \"Demo\"}'"
CONVERSATION=$(curl -s -X POST "$BASE/conversations/" -H "$AUTH" \
  -H 'Content-Type: application/json' -d '{"title": "Demo"}' | json '["data"]["id"]')
echo "conversation: $CONVERSATION"
QUESTION='6 乘以 7 等于多少？[[tool:calculator {"expression": "6*7"}]][[delay:150]]'
show "curl -N -X POST $BASE/messages/stream -d '{\"conversation_id\": \"$CONVERSATION\", ...}'"
curl -s -N -X POST "$BASE/messages/stream" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"conversation_id\": \"$CONVERSATION\", \"content\": $(printf '%s' "$QUESTION" | $BIN/python -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}"
show "curl $BASE/messages/$CONVERSATION"
SUMMARY=$(cat <<'PY'
import json, sys
for message in json.load(sys.stdin)["data"]["items"]:
    print(f"{message['role']:>9} [{message['status']}] {message['content']}")
    for call in message["tool_calls"]:
        print(f"          tool {call['name']}({json.dumps(call['arguments'])}) -> {call['status']}")
PY
)
curl -s "$BASE/messages/$CONVERSATION" -H "$AUTH" | $BIN/python -c "$SUMMARY"
