// Unit tests for the boot-check pieces that need no VM: the serial console
// classifier, hardware-model parsing, the QEMU command line, and
// ChildProcess/RunCommand (with /bin/sh).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "boot_check.h"
#include "gtest/gtest.h"
#include "hardware_model.h"
#include "qemu_command.h"
#include "serial_classifier.h"
#include "subprocess.h"

namespace cairn::boot {
namespace {

constexpr char kMarker[] = "CAIRN-BOOT-OK debian-bios-ahci";

TEST(SerialClassifier, MarkerLineDecidesAndInfoIsCollected) {
  SerialClassifier c(kMarker);
  EXPECT_FALSE(
      c.FeedSerial("[    0.000000] Linux version 6.1.0-37-amd64 (x)\n"));
  EXPECT_TRUE(c.kernel_started());
  EXPECT_FALSE(
      c.FeedSerial("CAIRN-INFO kernel=6.1.0-37-amd64\r\nCAIRN-INFO ip"));
  EXPECT_FALSE(
      c.FeedSerial("v4=enp0s2=192.0.2.10/24\r\nCAIRN-BOOT-OK debian-bi"));
  std::optional<Verdict> v = c.FeedSerial("os-ahci\r\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kMarkerReached);
  EXPECT_EQ(v->evidence, kMarker);
  EXPECT_EQ(c.info().at("kernel"), "6.1.0-37-amd64");
  EXPECT_EQ(c.info().at("ipv4"), "enp0s2=192.0.2.10/24");
}

TEST(SerialClassifier, WrongImageMarkerIsNotSuccess) {
  SerialClassifier c(kMarker);
  c.FeedSerial("Linux version 6.1\nCAIRN-BOOT-OK debian-uefi-gpt\n");
  EXPECT_EQ(c.Finish(/*deadline_passed=*/false).outcome,
            BootOutcome::kGuestExited);
}

TEST(SerialClassifier, GaveUpWaitingForRootIsInitramfs) {
  SerialClassifier c(kMarker);
  c.FeedSerial("[    0.0] Linux version 6.1.0\n");
  c.FeedSerial("Begin: Waiting for root file system ... done.\n");
  std::optional<Verdict> v =
      c.FeedSerial("Gave up waiting for root file system device.  Common\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kStuckInInitramfs);
}

TEST(SerialClassifier, InitramfsPromptWithoutNewlineIsInitramfs) {
  SerialClassifier c(kMarker);
  c.FeedSerial("Linux version 6.1.0\n");
  std::optional<Verdict> v = c.FeedSerial("(initramfs) ");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kStuckInInitramfs);
}

TEST(SerialClassifier, GrubRescueIsBootLoaderFailure) {
  SerialClassifier c(kMarker);
  c.FeedSerial("error: unknown filesystem.\r\nEntering rescue mode...\r\n");
  std::optional<Verdict> v = c.FeedSerial("grub rescue> ");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kBootLoaderFailure);
}

TEST(SerialClassifier, SeaBiosNoBootableDeviceIsBootLoaderFailure) {
  SerialClassifier c(kMarker);
  std::optional<Verdict> v = c.FeedFirmware(
      "Booting from Hard Disk...\nBoot failed: not a bootable disk\n\n"
      "No bootable device.  Retrying in 60 seconds.\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kBootLoaderFailure);
}

TEST(SerialClassifier, GrubErrorBeforeKernelIsNotDecisive) {
  SerialClassifier c(kMarker);
  EXPECT_FALSE(c.FeedSerial("error: no suitable video mode found.\n"));
  EXPECT_FALSE(c.FeedSerial("Linux version 6.1.0\n"));
  EXPECT_TRUE(c.FeedSerial(std::string(kMarker) + "\n").has_value());
}

TEST(SerialClassifier, NoKernelOutputAtDeadlineIsBootLoaderFailure) {
  SerialClassifier c(kMarker);
  c.FeedSerial("\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\n");
  c.FeedSerial("error: no such device: 1234.\n");
  Verdict v = c.Finish(/*deadline_passed=*/true);
  EXPECT_EQ(v.outcome, BootOutcome::kBootLoaderFailure);
  EXPECT_NE(v.evidence.find("no such device"), std::string::npos);
}

TEST(SerialClassifier, KernelRunningAtDeadlineIsTimeout) {
  SerialClassifier c(kMarker);
  c.FeedSerial("Linux version 6.1.0\n[  OK  ] Reached target Basic System.\n");
  EXPECT_EQ(c.Finish(/*deadline_passed=*/true).outcome, BootOutcome::kTimeout);
}

TEST(SerialClassifier, KernelPanic) {
  SerialClassifier c(kMarker);
  c.FeedSerial("Linux version 6.1.0\n");
  std::optional<Verdict> v = c.FeedSerial(
      "Kernel panic - not syncing: VFS: Unable to mount root fs\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kKernelPanic);
}

TEST(SerialClassifier, AnsiEscapesAreIgnored) {
  SerialClassifier c(kMarker);
  c.FeedSerial("\x1b[0mLinux version 6.1.0\n");
  std::optional<Verdict> v =
      c.FeedSerial(std::string("\x1b[1;1H") + kMarker + "\r\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->outcome, BootOutcome::kMarkerReached);
}

TEST(HardwareModel, ParsesNamesAndSizes) {
  EXPECT_EQ(*ParseDiskBus("virtio-scsi"), DiskBus::kVirtioScsi);
  EXPECT_EQ(*ParseDiskBus("nvme"), DiskBus::kNvme);
  EXPECT_FALSE(ParseDiskBus("ide").ok());
  EXPECT_EQ(*ParseFirmware("uefi"), Firmware::kUefi);
  EXPECT_EQ(*ParseNicModel("virtio-net"), NicModel::kVirtioNet);
  EXPECT_EQ(*ParseSize("4G"), 4ull << 30);
  EXPECT_EQ(*ParseSize("512MiB"), 512ull << 20);
  EXPECT_EQ(*ParseSize("1234"), 1234u);
  EXPECT_FALSE(ParseSize("4X").ok());
  EXPECT_FALSE(ParseSize("").ok());
}

TEST(HardwareModel, ValidatesMac) {
  HardwareModel m;
  m.mac = "52:54:00:c0:ff:ee";
  EXPECT_TRUE(ValidateHardwareModel(m).ok());
  m.mac = "01:00:5e:00:00:01";  // multicast
  EXPECT_FALSE(ValidateHardwareModel(m).ok());
  m.mac = "52:54:00:c0:ff";
  EXPECT_FALSE(ValidateHardwareModel(m).ok());
  m.nic = NicModel::kNone;
  EXPECT_TRUE(ValidateHardwareModel(m).ok());
}

bool Contains(const std::vector<std::string>& argv, const std::string& s) {
  return std::find(argv.begin(), argv.end(), s) != argv.end();
}

QemuPaths TestPaths() {
  QemuPaths p;
  p.disk = "/w/disk,1.qcow2";
  p.disk_format = "qcow2";
  p.serial_log = "/w/serial.log";
  p.firmware_log = "/w/fw.log";
  p.ovmf_code = "/ovmf/CODE.fd";
  p.ovmf_vars = "/w/VARS.fd";
  return p;
}

TEST(QemuCommand, AhciBiosE1000) {
  HardwareModel m;
  m.mac = "52:54:00:c0:ff:ee";
  std::vector<std::string> argv = BuildQemuArgv(m, TestPaths());
  std::string joined = absl::StrJoin(argv, " ");
  EXPECT_TRUE(Contains(argv, "q35,accel=tcg")) << joined;
  EXPECT_TRUE(Contains(argv, "ide-hd,drive=cairn_disk,bus=ide.0,bootindex=0"));
  EXPECT_TRUE(Contains(
      argv, "e1000,netdev=cairn_net,mac=52:54:00:c0:ff:ee,addr=0x2,romfile="));
  EXPECT_TRUE(Contains(argv, "-no-reboot"));
  // Commas in paths are escaped for QEMU's option parser.
  EXPECT_NE(joined.find("file=/w/disk,,1.qcow2"), std::string::npos) << joined;
  EXPECT_EQ(joined.find("pflash"), std::string::npos);
}

TEST(QemuCommand, UefiNvmeVirtioNet) {
  HardwareModel m;
  m.firmware = Firmware::kUefi;
  m.disk_bus = DiskBus::kNvme;
  m.nic = NicModel::kVirtioNet;
  std::vector<std::string> argv = BuildQemuArgv(m, TestPaths());
  std::string joined = absl::StrJoin(argv, " ");
  EXPECT_NE(
      joined.find("if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd"),
      std::string::npos);
  EXPECT_NE(joined.find("if=pflash,format=raw,unit=1,file=/w/VARS.fd"),
            std::string::npos);
  EXPECT_NE(joined.find("nvme,drive=cairn_disk"), std::string::npos);
  EXPECT_NE(joined.find("virtio-net-pci,netdev=cairn_net"), std::string::npos);
}

TEST(QemuCommand, VirtioScsiAndNoNic) {
  HardwareModel m;
  m.disk_bus = DiskBus::kVirtioScsi;
  m.nic = NicModel::kNone;
  std::vector<std::string> argv = BuildQemuArgv(m, TestPaths());
  EXPECT_TRUE(Contains(argv, "virtio-scsi-pci,id=cairn_scsi,addr=0x3"));
  EXPECT_TRUE(
      Contains(argv, "scsi-hd,drive=cairn_disk,bus=cairn_scsi.0,bootindex=0"));
  EXPECT_FALSE(Contains(argv, "-netdev"));
}

TEST(Subprocess, RunCommandCapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> r = RunCommand(
      {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->output.find("out"), std::string::npos);
  EXPECT_NE(r->output.find("err"), std::string::npos);
}

TEST(Subprocess, RunCommandTimesOutAndKills) {
  absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> r =
      RunCommand({"/bin/sh", "-c", "exec sleep 30"}, absl::Milliseconds(300));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(Subprocess, MissingProgramIsAnError) {
  EXPECT_FALSE(RunCommand({"/nonexistent/program"}, absl::Seconds(5)).ok());
}

TEST(Subprocess, ChildIsKilledAndReapedOnDestruction) {
  pid_t pid;
  {
    absl::StatusOr<std::unique_ptr<ChildProcess>> c =
        ChildProcess::Spawn({"sleep", "30"}, SpawnOptions{});
    ASSERT_TRUE(c.ok()) << c.status();
    pid = (*c)->pid();
    EXPECT_FALSE((*c)->WaitUntil(absl::Now() + absl::Milliseconds(50)));
    EXPECT_EQ(getpgid(pid), pid) << "child runs in its own process group";
  }
  // Reaped: the pid no longer names a child of ours.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
}

TEST(BootCheck, RejectsMissingDiskAndBadSize) {
  BootRequest req;
  req.disk_path = "/nonexistent/disk.raw";
  EXPECT_EQ(BootCheck(req).status().code(), absl::StatusCode::kNotFound);
  req.disk_path = "/dev/null";
  req.hardware.mac = "zz";
  EXPECT_EQ(BootCheck(req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn::boot
