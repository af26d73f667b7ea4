#!/bin/sh
# The example campaign end to end on the embedded defaults (SQLite ledger, outbox provider), in a
# throwaway home directory. Each step prints the command it runs. Usage: sh examples/demo.sh [bulksend]
set -e
here=$(cd "$(dirname "$0")" && pwd)
bulksend=${1:-bulksend}
BULKSEND_HOME=$(mktemp -d "${TMPDIR:-/tmp}/bulksend-demo.XXXXXX")
export BULKSEND_HOME
step() { printf '\n$ %s\n' "$*"; "$@"; }

step "$bulksend" credits topup 1000 --channel sms --ref demo-invoice-1
step "$bulksend" validate "$here/recipients.csv" --region GB
step "$bulksend" estimate "$here/recipients.csv" --region GB --template "$here/spring.txt" --rates "$here/rates.csv"
note() { printf '\n'; printf '# %s\n' "$@"; }
note "Quiet hours (21:00-08:00 in each recipient's own time zone) are on by default. Sent at night, a" \
     "campaign sends what is due, then ends with 'N messages wait until ... UTC' (exit 0, credits held);" \
     "the same command sends the rest in the morning. The demo turns them off to show the same at any hour" \
     "(docs/schedule.md)." \
     "spring.txt already says 'Reply STOP to opt out'; a marketing SMS that does not gets the opt-out footer."
step "$bulksend" send "$here/campaign.toml" --yes --quiet-hours off
note "Again: the campaign is done, nothing is sent twice (a cron line can repeat it safely)."
step "$bulksend" send "$here/campaign.toml" --yes --quiet-hours off
step "$bulksend" balance
step "$bulksend" credits audit
printf '\nThe messages are in %s/outbox/spring-sale.jsonl\n' "$BULKSEND_HOME"
