PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: install bwrap run test test-fast lint demo bench screenshots

install: $(VENV)/.installed bwrap

# run_python's sandbox is bubblewrap (Debian package `bubblewrap`); without it the tool answers 503.
bwrap:
	@command -v bwrap >/dev/null || [ -x /usr/bin/bwrap ] || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		     apt-get install -y -qq --no-install-recommends bubblewrap; }; \
	else \
		echo "note: bwrap is missing, so run_python will answer 503;" \
		     "install it as root: apt-get install bubblewrap"; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: install
	$(BIN)/flask db upgrade
	@address="$${BIND:-127.0.0.1:$${PORT:-8000}}"; \
	if [ "$${WEB_CLIENT:-on}" = off ]; then echo "API at http://$$address/api/"; \
	else echo "Open http://$$address/ in a browser (the web client; the API is under /api/)"; fi
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install
	$(BIN)/pytest

# Everything but the tests marked `slow` (real gunicorn/nginx, processes of their own).
test-fast: install
	$(BIN)/pytest -m "not slow"

# The web client's browser session in real Chromium, which writes docs/screenshots/*.png.
screenshots: install
	WEB_CLIENT_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -p no:randomly \
		tests/test_web_client.py -k "session or chinese"

lint: install
	$(BIN)/flake8

demo: install
	bash deploy/demo.sh

bench: install
	$(BIN)/python -m bench.run $(if $(QUICK),--quick) $(if $(TRANSPORTS),--transports) $(if $(JOBS),--jobs) $(if $(QUOTA),--quota) $(if $(LIFECYCLE),--lifecycle) $(if $(IMPORT),--import) $(if $(SEARCH),--search) $(if $(JSON),--json)
