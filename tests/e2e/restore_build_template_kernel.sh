#!/usr/bin/env bash
# End-to-end: a restore build that boots a generic boot template's kernel,
# only when the user chose it (issue 6; docs/restore-build.md "Booting a
# boot template's kernel").
#   - the source: a copy of the debian-bios-ahci fixture whose kernel has no
#     NVMe driver (drivers/nvme deleted, the guest's depmod run), backed up
#     into an encrypted store as "src";
#   - the template: the unmodified fixture, backed up into the same store as
#     "tmpl"; both profiles collected offline from the images;
#   - the target: the recorded uefi-nvme machine with a 3 GiB disk;
#   - without a choice the plan has the NVMe conflict (exit 1) and
#     `restore build` of it is refused (exit 5), storing nothing;
#     use-template-kernel without a template is refused with a clear message;
#     a plan naming a template image the store lacks is refused (exit 3)
#     before any appliance starts;
#   - with the template the plan is ready, the build copies the template's
#     kernel and module tree, the image holds the nvme module, and it boots
#     under OVMF on NVMe to the fixture's marker with root on nvme0n1.
# Usage: restore_build_template_kernel.sh CAIRN-AGENT CAIRN-MEDIA
#          CAIRN-PROFILE CAIRN-NBD-EXPORT CAIRN-BOOT-CHECK FIXTURE.raw
#          PROFILES-DIR
# Exit 77 (skip): not root, or a tool is missing.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib_e2e.sh"
AGENT=$(realpath "$1")
MEDIA=$(realpath "$2")
PROFILE=$(realpath "$3")
EXPORT=$(realpath "$4")
BOOTCHECK=$(realpath "$5")
FIXTURE=$(realpath "$6")
PROFILES=$(realpath "$7")
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (loop devices)"; exit 77; }
for tool in nbdkit nbdcopy qemu-img qemu-system-x86_64 virt-customize losetup \
            debugfs python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -f "$FIXTURE" ] || { echo "FAIL: fixture $FIXTURE missing" >&2; exit 1; }
META="${FIXTURE%.raw}.json"
[ -f "$META" ] || { echo "FAIL: fixture metadata $META missing" >&2; exit 1; }
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-template-kernel-e2e-XXXXXX")
EXPORT_PID=""
LOOP=""
cleanup() {
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  [ -n "$EXPORT_PID" ] && kill "$EXPORT_PID" 2>/dev/null || true
  [ -n "$EXPORT_PID" ] && wait "$EXPORT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

no_manifest() {  # no_manifest ID: nothing was stored under ID
  [ -z "$(ls repo/manifests | grep -- "$1" || true)" ] || fail "a refused build stored $1"
}

KVER=$(jget "$META" kernel_version)
[ -n "$KVER" ] || fail "no kernel_version in $META"

# --- the source: the fixture without the NVMe driver ------------------------
cp --sparse=always "$FIXTURE" src.raw
virt-customize -q --format raw -a src.raw \
  --run-command "rm -rf /lib/modules/$KVER/kernel/drivers/nvme && depmod -a $KVER" \
  >customize.log 2>&1 || fail "virt-customize: $(tail -20 customize.log)"
ok "source image: $(basename "$FIXTURE") without drivers/nvme of $KVER (depmod run)"

"$MEDIA" store init --store repo >/dev/null
"$MEDIA" key generate --out data.key >/dev/null
"$AGENT" backup --store repo --source src.raw --name pc1 --id src \
  --key-file data.key --quiet
"$AGENT" backup --store repo --source "$FIXTURE" --name debian-generic \
  --id tmpl --key-file data.key --quiet
ok "backed up the source as src and the template as tmpl (encrypted, one key)"

"$PROFILE" collect --image src.raw --format raw --out src.pb >/dev/null
"$PROFILE" collect --image "$FIXTURE" --format raw --out tmpl.pb >/dev/null
rm -f src.raw
"$PROFILE" collect --root "$PROFILES/uefi-nvme" --json --out uefi-nvme.json >/dev/null
python3 - uefi-nvme.json target.json <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
for d in p["disks"]:
    d["size_bytes"] = str(3 << 30)
json.dump(p, open(sys.argv[2], "w"))
EOF

# --- refusals -----------------------------------------------------------------
set +e
"$PROFILE" plan --source src.pb --target target.json --backup src \
  --target-name lab-nvme --out undecided.json > undecided.txt
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "plan without a choice: expected exit 1, got $rc: $(cat undecided.txt)"
grep -q "choose explicitly" undecided.txt || fail "no conflict in the plan: $(cat undecided.txt)"
grep -qi "nvme" undecided.txt || fail "the conflict does not name the NVMe device: $(cat undecided.txt)"
expect_fail 5 "blockers" "$MEDIA" restore build --store repo --backup src \
  --plan undecided.json --id refused1 --key-file data.key
no_manifest refused1
ok "no choice: the NVMe conflict blocks the plan (exit 1) and the build (exit 5)"

set +e
"$PROFILE" plan --source src.pb --target target.json --backup src \
  --target-name lab-nvme --conflict-choice use-template-kernel \
  --out notemplate.json > notemplate.txt
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "template kernel without a template: expected exit 1, got $rc"
grep -q "the template kernel was chosen but no template was given" notemplate.txt \
  || fail "no clear refusal: $(cat notemplate.txt)"
expect_fail 5 "no template was given" "$MEDIA" restore build --store repo \
  --backup src --plan notemplate.json --id refused2 --key-file data.key
no_manifest refused2
expect_fail 2 "together" "$PROFILE" plan --source src.pb --target target.json \
  --conflict-choice use-template-kernel --template-profile tmpl.pb
ok "use-template-kernel without a template: refused with a clear message"

# --- the plan with the template -------------------------------------------------
"$PROFILE" plan --source src.pb --target target.json --backup src \
  --target-name lab-nvme --conflict-choice use-template-kernel \
  --template-profile tmpl.pb --template-image tmpl --template-name debian-generic \
  --out plan.json > plan.txt || fail "plan with the template not ready: $(cat plan.txt)"
grep -q "Ready to build." plan.txt || fail "plan not ready: $(cat plan.txt)"
grep -q "install kernel $KVER from boot template 'debian-generic'" plan.txt \
  || fail "the plan does not say which kernel it installs: $(cat plan.txt)"
[ "$(jget plan.json template_kernel.image_id)" = "tmpl" ] || fail "template image not in the plan"
[ "$(jget plan.json template_kernel.kernel_version)" = "$KVER" ] || fail "template kernel is not $KVER"
[ "$(jget plan.json kernel_version)" = "$KVER" ] || fail "kernel_version is not the template's"
python3 - plan.json <<'EOF' || fail "nvme is not among the initramfs modules: $(cat plan.json)"
import json, sys
assert "nvme" in json.load(open(sys.argv[1]))["initramfs_modules"]
EOF
ok "plan: boots $KVER from template debian-generic (image tmpl), nvme in its initramfs"

python3 - plan.json nosuch.json <<'EOF'
import json, sys
p = json.load(open(sys.argv[1])); p["template_kernel"]["image_id"] = "nosuch"
json.dump(p, open(sys.argv[2], "w"))
EOF
expect_fail 3 "boot template image 'nosuch'" "$MEDIA" restore build --store repo \
  --backup src --plan nosuch.json --id refused3 --key-file data.key
no_manifest refused3
ok "a template image the store lacks: NotFound (exit 3), nothing stored"

# --- build ----------------------------------------------------------------------
"$MEDIA" restore build --store repo --backup src --plan plan.json \
  --id src-nvme --key-file data.key --json > build.json \
  || fail "build failed: $(cat build.json)"
cat build.json
python3 - build.json "$KVER" <<'EOF' || fail "the build report lacks the template kernel step"
import json, sys
b, k = json.load(open(sys.argv[1])), sys.argv[2]
steps = {s["step"]: s["detail"] for s in b["steps"]}
assert "template-kernel" in steps, steps
assert "debian-generic" in steps["template-kernel"], steps["template-kernel"]
assert "initramfs" in steps and "boot-loader" in steps, steps
assert "/lib/modules/" + k in b["changed_files"], b["changed_files"]
assert "/boot/vmlinuz-" + k in b["changed_files"], b["changed_files"]
print("template-kernel:", steps["template-kernel"])
print("boot-loader:", steps["boot-loader"])
EOF
"$MEDIA" store show --store repo --backup src-nvme --json > show.json
[ "$(jget show.json kind)" = "customized" ] || fail "kind is $(jget show.json kind)"
[ "$(jget show.json parent_id)" = "src" ] || fail "parent is $(jget show.json parent_id)"
ok "built src-nvme: $(jget build.json chunks_new) new chunks ($(jget build.json new_stored_bytes) bytes stored)"

# --- the image holds the template's NVMe driver -----------------------------------
"$EXPORT" --json --store repo --backup src-nvme --key-file data.key >export.json 2>export.err &
EXPORT_PID=$!
for _ in $(seq 300); do
  grep -q '^}' export.json 2>/dev/null && break
  kill -0 "$EXPORT_PID" 2>/dev/null || fail "export exited: $(cat export.err)"
  sleep 0.1
done
nbdcopy "$(jget export.json uri)" custom.raw
kill -TERM "$EXPORT_PID"; wait "$EXPORT_PID" || true; EXPORT_PID=""

geometry=$(python3 - custom.raw <<'EOF'
import subprocess, sys, json
out = subprocess.run(["sfdisk", "--json", sys.argv[1]], capture_output=True, text=True, check=True).stdout
p = json.loads(out)["partitiontable"]["partitions"][0]
print(p["start"] * 512, p["size"] * 512)
EOF
)
set -- $geometry
LOOP=$(losetup --find --show --read-only --offset "$1" --sizelimit "$2" custom.raw)
MODDIR=/usr/lib/modules/$KVER
debugfs -R "ls -p $MODDIR/kernel/drivers/nvme/host" "$LOOP" > nvme-ls.txt 2>&1 || true
debugfs -R "cat $MODDIR/modules.dep" "$LOOP" > modules.dep 2>/dev/null || true
losetup -d "$LOOP"; LOOP=""
grep -Eq '/nvme\.ko(\.[a-z]+)?/' nvme-ls.txt || fail "no nvme module in $MODDIR: $(cat nvme-ls.txt)"
grep -Eq '^kernel/drivers/nvme/host/nvme\.ko' modules.dep \
  || fail "modules.dep of $KVER does not list nvme (depmod not run?)"
ok "the image has $MODDIR/kernel/drivers/nvme/host/nvme.ko and modules.dep lists it"

# --- boot on the NVMe + UEFI target ------------------------------------------------
MARKER="CAIRN-BOOT-OK debian-bios-ahci"
set +e
"$BOOTCHECK" --disk custom.raw --firmware uefi --bus nvme --nic e1000 \
  --mac 52:54:00:ab:cd:02 --timeout 400 --marker "$MARKER" --json > boot.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the image did not boot: $(cat boot.json)"
[ "$(jget boot.json guest_info.firmware)" = "uefi" ] || fail "not booted by UEFI"
[ "$(jget boot.json guest_info.root_disk)" = "nvme0n1" ] \
  || fail "root disk is $(jget boot.json guest_info.root_disk)"
[ "$(jget boot.json guest_info.kernel)" = "$KVER" ] \
  || fail "booted kernel $(jget boot.json guest_info.kernel), not the template's $KVER"
ok "boots under OVMF on NVMe with the template's kernel: root nvme0n1 ($(jget boot.json elapsed_seconds) s)"
echo "PASS restore_build_template_kernel"
