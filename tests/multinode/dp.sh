#!/usr/bin/env bash
# multinode_dp: the real slurm/pretrain-multinode.sbatch as a 3-node x 1-task job on the test
# cluster (3 hosts = 3 network + UTS namespaces, Open MPI over TCP only, PMIx via srun) trains 40
# steps; the ranks must report 3 different hosts, the hosts' links must carry at least the
# gradient traffic a ring all-reduce needs, and the parameters must be bit-identical to a 3-rank
# single-host mpirun run of the same configuration (1 thread per rank in both).
source "$(dirname "$0")/lib.sh"

STEPS=40
ARGS=(--steps "$STEPS" --ckpt-every 20)
pretrain 3 "${ARGS[@]}" --ckpt-dir ref 2>ref.log || fail "reference run failed: $(tail -3 ref.log)"

tx0=$(tx_total)
submit 3 "${ARGS[@]}"
finish 120
tx1=$(tx_total)
[ "$RC" -eq 0 ] || fail "sbatch --wait returned $RC"
log=logs/pretrain-$JOB-r0.log
hosts=$(hosts_of "$log")
[ "$hosts" = "node1 node2 node3 " ] || fail "ranks ran on hosts '$hosts', want node1 node2 node3"
# N = 4 x parameters gradient bytes per step. Any all-reduce over P ranks makes every rank send at
# least (P-1)/P x N (each rank's contribution must leave it; the reduce-scatter lower bound), a ring
# sends 2(P-1)/P x N: over 3 ranks and all steps at least 2 x N x STEPS bytes cross the links.
params=$(sed -nE 's/.*model: ([0-9]+) parameters.*/\1/p' "$log" | head -1)
need=$(( params * 4 * 2 * STEPS ))
sent=$(( tx1 - tx0 ))
echo "hosts: $hosts; links sent $sent bytes during the job (any all-reduce needs >= $need, a ring $((need * 2)))"
[ "$sent" -ge "$need" ] || fail "the hosts' links carried $sent bytes, less than the $need the gradients need: traffic did not cross hosts"
S=$(printf 'step_%08d' "$STEPS")
[ "$(cat ck/latest)" = "$S" ] || fail "final checkpoint missing"
same_files "ck/$S" "ref/$S" model.safetensors optim.safetensors
pass "3-node job $JOB on $hosts: $sent bytes over the links; parameters == 3-rank single-host run"
