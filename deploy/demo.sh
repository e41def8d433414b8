#!/usr/bin/env bash
# A newcomer's first look: the GLM simulator, the service on it, one streamed answer with a
# tool call, then an edit, a regeneration and a switch back to the first branch, shown with
# curl. Everything stops when the script ends, and every run starts from
# a fresh demo database, so it can be run again and again. DEMO_PORT (8001) and SIM_PORT (9100)
# move the two servers; DEMO_DIR (instance) holds the demo database and the servers' logs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SIM_PORT=${SIM_PORT:-9100}
PORT=${DEMO_PORT:-8001}
DIR=${DEMO_DIR:-instance}
BASE="http://127.0.0.1:$PORT/api"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR/demo.db" "$DIR/demo.db-wal" "$DIR/demo.db-shm"
export DATABASE_URL="sqlite:///$DIR/demo.db" ZHIPUAI_API_KEY="demo-key" \
       GLM_BASE_URL="http://127.0.0.1:$SIM_PORT/api/paas/v4" PORT WEB_CONCURRENCY=1 \
       FLASK_APP=wsgi.py LOG_LEVEL=WARNING

SIM_PID="" APP_PID=""
cleanup() { kill $SIM_PID $APP_PID 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
fail() { echo "make demo: $1" >&2; [ -z "${2:-}" ] || tail -n 20 "$2" >&2; exit 1; }

for port in "$SIM_PORT" "$PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is in use; pick others with DEMO_PORT=... SIM_PORT=..."
  fi
done

$BIN/python -m tests.glm_simulator --port "$SIM_PORT" > "$DIR/demo-simulator.log" 2>&1 &
SIM_PID=$!
$BIN/flask db upgrade > "$DIR/demo-migrate.log" 2>&1 || fail "flask db upgrade failed:" \
  "$DIR/demo-migrate.log"
$BIN/gunicorn -c gunicorn.conf.py wsgi:app > "$DIR/demo-service.log" 2>&1 &
APP_PID=$!
# Both are up once the simulator has said so and the service answers; either may die instead.
until grep -q "listening on" "$DIR/demo-simulator.log"; do
  kill -0 "$SIM_PID" 2>/dev/null || fail "the GLM simulator stopped:" "$DIR/demo-simulator.log"
  [ "$SECONDS" -lt 120 ] || fail "the GLM simulator did not start in 2 minutes:" \
    "$DIR/demo-simulator.log"
  sleep 0.1
done
until curl -sf "$BASE/health" > /dev/null; do
  kill -0 "$APP_PID" 2>/dev/null || fail "the service stopped:" "$DIR/demo-service.log"
  [ "$SECONDS" -lt 120 ] || fail "$BASE/health did not answer in 2 minutes:" \
    "$DIR/demo-service.log"
  sleep 0.1
done

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
SUMMARY=$(cat <<'PY'
import json, sys
for message in json.load(sys.stdin)["data"]["items"]:
    siblings = message["sibling_ids"]
    version = f" <{siblings.index(message['id']) + 1}/{len(siblings)}>" if len(siblings) > 1 else ""
    print(f"{message['role']:>9}{version} [{message['status']}] {message['content']}")
    for call in message["tool_calls"]:
        print(f"          tool {call['name']}({json.dumps(call['arguments'])}) -> {call['status']}")
PY
)
branch() {
  show "curl $BASE/messages/$CONVERSATION"
  curl -s "$BASE/messages/$CONVERSATION" -H "$AUTH" | $BIN/python -c "$SUMMARY"
}
post() { curl -s -X "$1" "$BASE/$2" -H "$AUTH" -H 'Content-Type: application/json' -d "$3"; }
branch
FIRST=$(curl -s "$BASE/messages/$CONVERSATION" -H "$AUTH" | json '["data"]["items"][0]["id"]')

# The message tree: an edit is a send with the edited message's parent (here none: the first
# message); a regeneration answers the same question again; a switch goes back to the old branch.
EDIT='6 乘以 8 呢？[[tool:calculator {"expression": "6*8"}]]'
show "curl -X POST $BASE/messages/ -d '{..., \"content\": \"6 乘以 8 呢？\", \"parent_id\": null}'   # edit"
ANSWER=$(post POST messages/ "{\"conversation_id\": \"$CONVERSATION\", \"parent_id\": null, \"content\": $(printf '%s' "$EDIT" | $BIN/python -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" \
  | json '["data"]["assistant_message"]["id"]')
echo "answer: $ANSWER"
show "curl -X POST $BASE/messages/$ANSWER/regenerate   # another answer"
post POST "messages/$ANSWER/regenerate" '{}' | json '["data"]["assistant_message"]["content"]'
branch
show "curl -X PUT $BASE/conversations/$CONVERSATION -d '{\"current_message_id\": \"$FIRST\"}'   # back to the first version"
post PUT "conversations/$CONVERSATION" "{\"current_message_id\": \"$FIRST\"}" \
  | json '["data"]["current_message_id"]'
branch
