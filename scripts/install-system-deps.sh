#!/usr/bin/env bash
# Debian/Ubuntu packages Murmur needs beyond PyPI:
#   espeak-ng  the last-resort TTS backend, and speech audio for the tests
#   sox        audio conversion in the tests and the troubleshooting guide
#   libgl1, libglib2.0-0  what OpenCV (pulled in by the optional OCR, rapidocr) loads
#   chromium   the real browser tests/test_web_page.py drives the phone page in (Playwright
#              runs it as the system browser; its own browser download is never used)
#   redis-server  the shared store tests/test_fleet.py starts (a fleet of frontends)
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v lua5.4 >/dev/null 2>&1 || need+=(lua5.4)  # runs the Frame/Halo app: tests/test_brilliant_lua.py
if command -v ldconfig >/dev/null 2>&1; then
  libs=$(ldconfig -p)
  grep -q 'libGL\.so\.1' <<<"$libs" || need+=(libgl1)
  grep -q 'libgthread-2\.0\.so\.0' <<<"$libs" || need+=(libglib2.0-0)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "murmur: please install ${need[*]} with your system's package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "murmur: installing ${need[*]} (apt)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
