#!/bin/bash
# The single-node recipe as README gives it, run after start.sh: the exact script that wrote
# run-2026-12-05.log beside it, with the paths it had there (its folder /tmp/slurm-run, the
# checkout /work/main, PostgreSQL on 127.0.0.1). A 2-task array runs an 8-trial study; then,
# in a second study, one task is cancelled mid-trial and the other resumes its trial.
set -uo pipefail
cd /tmp/slurm-run
DB=postgresql://postgres@127.0.0.1:5432/test
export PYTHON=$(python -c "import sys; print(sys.executable)") STORAGE=$DB DATA_DIR=/tmp/slurm-run/data
say() { echo; echo "\$ $*"; "$@" 2>&1; }
wait_done() { while [ -n "$(squeue -h -j "$1")" ]; do sleep 2; done; }
echo "# $(date -u +%FT%TZ) on $(hostname -s): $(sinfo --version), $(nproc) CPUs, commit $(git -C /work/main rev-parse --short HEAD)"
say python -m search.run --create-only --space mlp --dataset sample --epochs 4 --trials 8 --fix image_size=0 \
    --study slurm-array --storage $DB --checkpoint-dir /tmp/slurm-run/checkpoints
echo; echo "\$ STUDY=slurm-array STORAGE=$DB PYTHON=$PYTHON DATA_DIR=$DATA_DIR sbatch --array=0-1 deploy/slurm/search-worker.sbatch"
job=$(STUDY=slurm-array sbatch --parsable --array=0-1 /work/main/deploy/slurm/search-worker.sbatch)
echo "Submitted batch job $job"
sleep 5; say squeue
wait_done "$job"
for f in cifar-search-${job}_*.out; do echo; echo "\$ cat $f"; cat "$f"; done
say python -m search.status --study slurm-array --storage $DB

# scancel of one task mid-trial: its trial is re-queued and resumes on the other task
say python -m search.run --create-only --space mlp --dataset sample --epochs 12 --trials 4 \
    --fix width=128,depth=1,image_size=0 --study slurm-scancel --storage $DB --checkpoint-dir /tmp/slurm-run/checkpoints
job=$(STUDY=slurm-scancel sbatch --parsable --array=0-1 /work/main/deploy/slurm/search-worker.sbatch)
echo; echo "Submitted batch job $job (slurm-scancel)"
python - "$DB" <<'PY'
import sys, time, optuna
while True:  # wait for a trial that has checkpointed an epoch or two, mid-run
    study = optuna.load_study(study_name="slurm-scancel", storage=sys.argv[1])
    running = [t for t in study.trials if t.state.name == "RUNNING" and len(t.intermediate_values) >= 3]
    if running:
        print(f"trial {running[0].number} on {running[0].user_attrs.get('worker')} has reported {len(running[0].intermediate_values)} epochs")
        break
    time.sleep(1)
PY
task=$(python - "$DB" <<'PY'
import sys, optuna
study = optuna.load_study(study_name="slurm-scancel", storage=sys.argv[1])
running = [t for t in study.trials if t.state.name == "RUNNING"]
print(running[0].user_attrs["worker"].split("gpu ")[-1])
PY
)
say squeue
echo; echo "\$ scancel ${job}_$task   # the task whose GPU is $task"
scancel "${job}_$task"
wait_done "$job"
for f in cifar-search-${job}_*.out; do echo; echo "\$ cat $f"; cat "$f"; done
say python -m search.status --study slurm-scancel --storage $DB
python - "$DB" <<'PY'
import sys, optuna
study = optuna.load_study(study_name="slurm-scancel", storage=sys.argv[1])
print()
for t in study.trials:
    print(f"trial {t.number}: {t.state.name:8} epochs {len(t.intermediate_values):2}  worker {t.user_attrs.get('worker', '-')}  "
          f"{t.user_attrs.get('fail_reason', '')} {('resumed after epoch ' + str(t.user_attrs['resumed_after_epoch'])) if t.user_attrs.get('resumed_after_epoch') else ''}")
PY
echo; echo "\$ ls checkpoints/*"; ls /tmp/slurm-run/checkpoints/* 2>&1
for s in slurm-array slurm-scancel; do python -c "import optuna; optuna.delete_study(study_name='$s', storage='$DB')"; done
