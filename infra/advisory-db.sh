#!/usr/bin/env bash
# Makes the offline RustSec copy ($ADVISORY_DB, a plain tree) the git repository cargo-deny
# reads ($ADVISORY_REPO): one commit, dated with the snapshot's own commit time from its
# SNAPSHOT file, so cargo-deny's `maximum-db-staleness` measures the database's real age.
# Idempotent: redone only when SNAPSHOT names another upstream commit. Prints the age.
set -euo pipefail
: "${ADVISORY_DB:?}" "${ADVISORY_REPO:?}"
snapshot="$ADVISORY_DB/SNAPSHOT"
[[ -f $snapshot ]] || { echo "advisory-db: no $snapshot: the RustSec copy is missing" >&2; exit 1; }
upstream=$(grep -oE 'commit [0-9a-f]{40}' "$snapshot" | head -1 | cut -d' ' -f2)
when=$(grep -oE 'committed [0-9T:+-]+' "$snapshot" | head -1 | cut -d' ' -f2)
[[ -n $upstream && -n $when ]] || { echo "advisory-db: cannot read commit and date from $snapshot" >&2; exit 1; }
stamp="$ADVISORY_REPO/.git/batchops-snapshot"
if [[ ! -f $stamp || $(cat "$stamp") != "$upstream" ]]; then
  rm -rf "$ADVISORY_REPO"
  mkdir -p "$ADVISORY_REPO"
  cp -R "$ADVISORY_DB"/. "$ADVISORY_REPO"/
  chmod -R u+w "$ADVISORY_REPO"
  (
    cd "$ADVISORY_REPO"
    git init --quiet --initial-branch=main
    git add --all
    GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when git -c user.name=batchops -c user.email=batchops@localhost \
      -c commit.gpgsign=false commit --quiet -m "RustSec advisory-db $upstream (offline copy)"
  )
  echo "$upstream" >"$stamp"
fi
age_days=$(( ($(date +%s) - $(date -d "$when" +%s)) / 86400 ))
echo "deny: advisories from the offline RustSec copy of $when (upstream $upstream), $age_days days old"
# cargo-deny checks `maximum-db-staleness` only when it fetches, never with --offline: the
# limit in deny.toml is enforced here.
max_days=$(sed -nE 's/^maximum-db-staleness = "P([0-9]+)D".*/\1/p' "${DENY_CONFIG:-deny.toml}")
[[ -n $max_days ]] || { echo "advisory-db: deny.toml sets no maximum-db-staleness in days" >&2; exit 1; }
if (( age_days > max_days )); then
  echo "advisory-db: the RustSec copy is $age_days days old, past deny.toml's maximum-db-staleness of $max_days days: refresh shared/advisory-db" >&2
  exit 1
fi
