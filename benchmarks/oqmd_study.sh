#!/usr/bin/env bash
# The README's study ("A study, step by step"), command for command, on the shared OQMD / MP /
# experimental files, with the time of each step. Run from anywhere:
#   benchmarks/oqmd_study.sh [WORKDIR]          (default WORKDIR: /tmp/matstore_study)
# Sizes are the README's; for a quick check of the commands only, shrink them, e.g.
#   FE_EPOCHS=1 BG_ROWS=2000 GAN_ROWS=500 GAN_EPOCHS=1 N=2000 benchmarks/oqmd_study.sh /tmp/s
# Needs `matstore` and `python` of the project's venv on PATH and the data in $D
# (default: ../shared/data next to the repository).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
export D=${D:-$REPO/../shared/data}
WORK=${1:-/tmp/matstore_study}
FE_EPOCHS=${FE_EPOCHS:-30} BG_ROWS=${BG_ROWS:-40000} GAN_ROWS=${GAN_ROWS:-10000}
GAN_EPOCHS=${GAN_EPOCHS:-14} N=${N:-100000}
mkdir -p "$WORK" && cd "$WORK"
rm -f study.duckdb study.duckdb.* colleague.duckdb colleague.duckdb.* && rm -rf report export

step() {  # step 'command line': print it, run it, print its wall time
  echo; echo "\$ $1"; local t=$SECONDS
  bash -o pipefail -c "$1"
  echo "[$((SECONDS - t)) s]"
}

step 'matstore init study.duckdb'
export MATSTORE_DB=study.duckdb
step 'matstore ingest oqmd --file $D/oqmd/formation_enthalpy_train.csv --prop formation_energy_per_atom=target:eV/atom'
step 'matstore ingest oqmd --file $D/oqmd/bandgap_train.csv --prop band_gap=target:eV'
step 'matstore ingest mp --file $D/mp/e_form.csv --prop formation_energy_per_atom=target:eV/atom'
step 'matstore ingest mp --file $D/mp/gap.csv --prop band_gap=target:eV'
step 'matstore ingest csv --file $D/expt/expt_gap.csv --prop band_gap=target:eV --source-name expt --kind experiment'
step 'matstore info'
step "matstore query 'SELECT formula, band_gap, band_gap_source, band_gap_experiment, band_gap_experiment_source
                FROM composition_properties WHERE formula IN (\$a, \$b)' -p a=TiO2 -p b=GaAs"
step "matstore train --model elemnet-magpie-fe --target-source oqmd --epochs $FE_EPOCHS"
step "matstore train --model rf-bg --target-source oqmd --max-rows $BG_ROWS"
step "python - <<'PY'
from matstore import training
from matstore.store import Store

mv = training.train(Store('study.duckdb'), 'gan-mp-small', max_rows=$GAN_ROWS, seed=0,
                    fractions=(0.9, 0.05, 0.05), epochs=$GAN_EPOCHS)
s = mv.metrics['sample']
print(f\"{mv.ref}: {mv.metrics['train_seconds']:.0f} s; {s['decodable_pct']:.1f}% decodable, \"
      f\"{s['uniqueness_pct']:.1f}% unique, {s['validity_pct']:.1f}% valid, {s['novelty_pct']:.1f}% novel\")
PY"
step 'matstore models list'
step 'matstore models show elemnet-magpie-fe@1 | head -40'
# the README's run 1: a first look without formation energies, completed by the stand-alone stages
step "matstore generate --model gan-mp-small -n $((N / 2)) --validate --predict rf-bg"
step "matstore generate --model gan-mp-small -n $N --seed 1 --validate \\
    --predict elemnet-magpie-fe --predict rf-bg --stability oqmd"
step 'matstore predict --model elemnet-magpie-fe --where "composition_id IN (SELECT composition_id FROM candidates)"'
step 'matstore stability --model elemnet-magpie-fe --reference oqmd'
step 'matstore validate'
step 'matstore stability --reference oqmd'
step 'matstore bias --model elemnet-magpie-fe --reference oqmd'
step 'matstore stability --model elemnet-magpie-fe --reference oqmd --hull mixed'
step "matstore query 'SELECT run_id, model, n_samples, decodable_pct, n_unique, unique_pct, novel_pct, valid_pct FROM generation_stats'"
step 'matstore screen stable_semiconductors --limit-rows 10'
step "matstore query 'SELECT formula, ions, round(e_above_hull, 3) AS e_hull, round(pred_formation_energy_per_atom, 3) AS pred_Ef,
                       round(pred_band_gap, 2) AS pred_gap, fe_model, band_gap_model, reference
                FROM screen_stable_semiconductors WHERE reference = \$ref LIMIT 10' -p ref=oqmd+model"
step 'matstore stability --model elemnet-magpie-fe --reference mp'
step "matstore query 'SELECT formula, ions, round(e_above_hull, 3) AS e_hull, round(pred_band_gap, 2) AS pred_gap, reference
                FROM screen_stable_semiconductors WHERE reference = \$ref AND e_above_hull >= \$lo LIMIT 5' -p ref=mp -p lo=-0.05"
step 'matstore screen semiconductors --csv | head -4'
step 'matstore screen'
step 'matstore report --out report'
step 'matstore export parquet export'
step 'matstore init colleague.duckdb'
step 'matstore ingest csv --db colleague.duckdb --file $D/expt/expt_gap.csv --limit 300 \
    --prop band_gap=target:eV --source-name lab_gaps --kind experiment'
step 'matstore merge colleague.duckdb'
step 'matstore info --provenance'
