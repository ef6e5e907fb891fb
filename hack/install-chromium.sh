#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test (internal/plugin,
# TestTheDashboardInABrowser): headless, driven by chromedp over the DevTools protocol.
# Run as root on Debian or Ubuntu (CI images); elsewhere install Chromium or Chrome your
# way and point TMINUS_CHROMIUM at it.
set -euo pipefail
if [ -n "${TMINUS_CHROMIUM:-}" ]; then
	echo "chromium: TMINUS_CHROMIUM=${TMINUS_CHROMIUM}"
	exit 0
fi
if [ "$(id -u)" != 0 ] && ! command -v chromium >/dev/null 2>&1; then
	echo "chromium: not found and not root: install Chromium or Chrome and set TMINUS_CHROMIUM (the dashboard's browser test needs one)" >&2
	exit 1
fi
if command -v chromium >/dev/null 2>&1; then
	echo "chromium: $(chromium --version 2>/dev/null || echo present)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: $(chromium --version)"
