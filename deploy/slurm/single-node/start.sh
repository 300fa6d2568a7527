#!/bin/bash
# A single-node Slurm on this machine (controller and node on one host, hostname "vm"), as the
# array-job script was run on it (README: Many GPUs, many hosts). Debian's slurm-wlm; two
# stand-in GPU devices (/dev/null's), so that --gres=gpu:1 allocates and Slurm sets
# CUDA_VISIBLE_DEVICES as on a GPU node. Run as root.
set -euo pipefail
here=$(dirname "$0")
apt-get install -y slurm-wlm
mkdir -p /var/spool/slurmd /var/spool/slurmctld /var/log/slurm /run/munge
cp "$here/slurm.conf" "$here/gres.conf" /etc/slurm/
for n in 0 1; do [ -e /dev/nvidia$n ] || mknod /dev/nvidia$n c 1 3; done
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
su munge -s /bin/sh -c /usr/sbin/munged
slurmctld
slurmd
sleep 3
scontrol update nodename="$(hostname -s)" state=resume || true
sinfo
