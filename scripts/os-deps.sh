#!/usr/bin/env bash
# Debian packages the tests use besides PostgreSQL (which dev-services.sh installs): gpg for PGP file
# exchange, the OpenSSH sftp client for real SFTP sessions, Chromium for the ops console browser tests.
# Installs only what is missing; a no-op on a machine that has them.
set -euo pipefail
missing=()
command -v gpg >/dev/null 2>&1 || missing+=(gnupg)
command -v sftp >/dev/null 2>&1 || missing+=(openssh-client)
if [ -z "${CALHUB_SKIP_BROWSER:-}" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
