#!/usr/bin/env bash
# Regenerates the example backup in this folder the way upstream proxsave writes one:
# GNU tar (PAX) of a small PVE node tree | xz -T0 | age (passphrase-derived recipient with a
# per-install v2 salt), a JSON manifest, a sha256sum line, and a .bundle.tar of the three.
# The passphrase is in example-passphrase.txt (a demo secret, do not reuse it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

host=pve1.example.lan
stamp=20260724-023000
name="$host-backup-$stamp.tar.xz.age"
salt="proxsave/age-passphrase/v2:0123456789abcdef0123456789abcdef"
pass=$(head -n1 "$here/example-passphrase.txt")

t="$work/tree"
mkdir -p "$t"/etc/pve/priv "$t"/etc/pve/nodes/pve1/qemu-server "$t"/etc/pve/nodes/pve1/lxc \
  "$t"/etc/network "$t"/etc/ssh "$t"/root/.ssh "$t"/var/lib/pve-cluster \
  "$t"/var/lib/proxsave-info/commands/system "$t"/etc/cron.d "$t"/usr/local/bin
printf 'dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n\nnfs: nas\n\tpath /mnt/pve/nas\n\tserver 192.0.2.50\n\texport /srv/backup\n\tcontent backup\n' > "$t/etc/pve/storage.cfg"
printf 'keyboard: en-us\nmigration: secure,network=192.0.2.0/24\n' > "$t/etc/pve/datacenter.cfg"
printf 'vzdump: backup-nightly\n\tschedule 02:30\n\tstorage nas\n\tall 1\n\tmode snapshot\n\tcompress zstd\n' > "$t/etc/pve/jobs.cfg"
printf 'user:root@pam:1:0:::root@example.lan:::\nuser:ops@pve:1:0:Ops:Team:ops@example.lan:::\nacl:1:/:ops@pve:PVEAuditor:\n' > "$t/etc/pve/user.cfg"
printf 'root@pam:$5$demo$notarealhash\n' > "$t/etc/pve/priv/shadow.cfg"
printf -- '-----BEGIN PRIVATE KEY-----\nZGVtbyBrZXksIG5vdCBhIHJlYWwgb25l\n-----END PRIVATE KEY-----\n' > "$t/etc/pve/priv/authkey.key"
printf 'boot: order=scsi0\ncores: 4\nmemory: 8192\nname: web01\nnet0: virtio=BC:24:11:00:00:01,bridge=vmbr0\nscsi0: local-zfs:vm-100-disk-0,size=32G\n' > "$t/etc/pve/nodes/pve1/qemu-server/100.conf"
printf 'arch: amd64\nhostname: dns01\nmemory: 512\nrootfs: local-zfs:subvol-101-disk-0,size=8G\n' > "$t/etc/pve/nodes/pve1/lxc/101.conf"
ln -s nodes/pve1 "$t/etc/pve/local"
printf 'auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n' > "$t/etc/network/interfaces"
printf '127.0.0.1 localhost\n192.0.2.10 pve1.example.lan pve1\n' > "$t/etc/hosts"
printf 'pve1\n' > "$t/etc/hostname"
ln -s /usr/share/zoneinfo/Europe/Rome "$t/etc/localtime"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\n' > "$t/etc/ssh/sshd_config"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKeyNotReal admin@laptop\n' > "$t/root/.ssh/authorized_keys"
printf '30 3 * * * root /usr/local/bin/pve-report\n' > "$t/etc/cron.d/pve-report"
printf '#!/bin/sh\npvesh get /nodes/pve1/status\n' > "$t/usr/local/bin/pve-report"
head -c 65536 /dev/zero | tr '\0' 'x' > "$t/var/lib/pve-cluster/config.db"
printf '# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=%s\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=standalone\nSUPPORTS_SELECTIVE_RESTORE=true\n' "$host" > "$t/var/lib/proxsave-info/backup_metadata.txt"
printf 'nameserver 192.0.2.1\n' > "$t/var/lib/proxsave-info/commands/system/resolv_conf.txt"
printf 'Created by PID 4242 on 2026-07-24 00:30:00 UTC' > "$t/.proxsave-marker"
chmod 640 "$t"/etc/pve/*.cfg "$t"/etc/pve/nodes/pve1/*/*.conf
chmod 700 "$t/etc/pve/priv" "$t/root/.ssh"
chmod 600 "$t"/etc/pve/priv/* "$t/root/.ssh/authorized_keys" "$t/var/lib/pve-cluster/config.db" "$t/.proxsave-marker"
chmod 755 "$t/usr/local/bin/pve-report"
find "$t" -exec touch -h -d '2026-07-24 02:29:59.123456789 +0200' {} +

recipient=$(cd "$top" && cargo run -q -p proxsave-archive --example derive_recipient -- "$pass" "$salt")
tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -C "$t" -cf - . | xz -6 -T0 -c | age -r "$recipient" > "$work/$name"
sha=$(sha256sum "$work/$name" | cut -d' ' -f1)
size=$(stat -c %s "$work/$name")
printf '%s  %s\n' "$sha" "$name" > "$work/$name.sha256"
printf '{\n  "archive_path": "/opt/proxsave/backup/%s",\n  "archive_size": %s,\n  "sha256": "%s",\n  "created_at": "2026-07-24T02:30:00.512345678+02:00",\n  "compression_type": "xz",\n  "compression_level": 6,\n  "compression_mode": "standard",\n  "proxmox_type": "pve",\n  "proxmox_targets": [\n    "pve"\n  ],\n  "proxmox_version": "8.4.1",\n  "pve_version": "8.4.1",\n  "hostname": "%s",\n  "script_version": "0.30.0",\n  "encryption_mode": "age",\n  "cluster_mode": "standalone",\n  "passphrase_salt": "%s"\n}' \
  "$name" "$size" "$sha" "$host" "$salt" > "$work/$name.metadata"
rm -f "$here"/*.bundle.tar
tar --format=ustar --owner=0 --group=0 --numeric-owner -C "$work" -cf "$here/$name.bundle.tar" "$name.metadata" "$name.sha256" "$name"
echo "wrote $here/$name.bundle.tar"
