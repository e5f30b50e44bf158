#include "serial_classifier.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cairn::boot {
namespace {

// This Abseil build has its own absl::string_view (not std::string_view).
absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

// Removes ANSI escape sequences (OVMF and GRUB draw with them) and carriage
// returns, so patterns match what a human would read.
std::string CleanLine(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\x1b') {
      // ESC [ params final-byte, or ESC + one char.
      if (i + 1 < line.size() && line[i + 1] == '[') {
        i += 2;
        while (i < line.size() && !(line[i] >= '@' && line[i] <= '~')) {
          ++i;
        }
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\r' || c == '\0') continue;
    out.push_back(c);
  }
  return out;
}

constexpr std::string_view kInitramfsPatterns[] = {
    "Gave up waiting for root",
    "ALERT!",
    "(initramfs)",
};

constexpr std::string_view kLoaderPatterns[] = {
    "No bootable device",
    "grub rescue>",
    "Minimal BASH-like line editing is supported",  // GRUB prompt, no config
    "No bootable option or device was found",       // OVMF
    "UEFI Interactive Shell",                       // OVMF fell to the shell
    "Shell> ",
};

}  // namespace

std::string_view BootOutcomeName(BootOutcome outcome) {
  switch (outcome) {
    case BootOutcome::kMarkerReached:
      return "marker_reached";
    case BootOutcome::kStuckInInitramfs:
      return "stuck_in_initramfs";
    case BootOutcome::kBootLoaderFailure:
      return "boot_loader_failure";
    case BootOutcome::kKernelPanic:
      return "kernel_panic";
    case BootOutcome::kTimeout:
      return "timeout";
    case BootOutcome::kGuestExited:
      return "guest_exited";
  }
  return "unknown";
}

SerialClassifier::SerialClassifier(std::string marker)
    : marker_(std::move(marker)) {}

std::optional<Verdict> SerialClassifier::FeedSerial(std::string_view text) {
  serial_partial_.append(text);
  size_t start = 0;
  for (size_t nl; (nl = serial_partial_.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    ScanSerialLine(std::string_view(serial_partial_).substr(start, nl - start));
  }
  serial_partial_.erase(0, start);
  // Prompts ("(initramfs) ", "grub rescue> ") are not followed by a newline:
  // look at the unterminated tail too, without consuming it.
  if (!verdict_.has_value() && !serial_partial_.empty()) {
    std::string_view raw_tail = serial_partial_;
    if (raw_tail.size() > 512)
      raw_tail = raw_tail.substr(raw_tail.size() - 512);
    std::string tail = CleanLine(raw_tail);
    if (kernel_started_ && absl::StrContains(tail, "(initramfs)")) {
      verdict_ = Verdict{BootOutcome::kStuckInInitramfs, tail};
    } else if (!kernel_started_ && (absl::StrContains(tail, "grub rescue>") ||
                                    absl::StrContains(tail, "Shell> "))) {
      verdict_ = Verdict{BootOutcome::kBootLoaderFailure, tail};
    }
  }
  return verdict_;
}

std::optional<Verdict> SerialClassifier::FeedFirmware(std::string_view text) {
  firmware_partial_.append(text);
  size_t start = 0;
  for (size_t nl;
       (nl = firmware_partial_.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    ScanFirmwareLine(
        std::string_view(firmware_partial_).substr(start, nl - start));
  }
  firmware_partial_.erase(0, start);
  return verdict_;
}

void SerialClassifier::ScanSerialLine(std::string_view raw) {
  std::string line = CleanLine(raw);
  if (absl::StartsWith(line, "CAIRN-INFO ")) {
    std::string_view kv = std::string_view(line).substr(11);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) {
      info_[std::string(absl::StripAsciiWhitespace(AV(kv.substr(0, eq))))] =
          std::string(absl::StripAsciiWhitespace(AV(kv.substr(eq + 1))));
    }
    return;
  }
  if (!kernel_started_ && absl::StrContains(line, "Linux version ")) {
    kernel_started_ = true;
  }
  if (verdict_.has_value()) return;

  if (absl::StrContains(line, marker_)) {
    verdict_ = Verdict{BootOutcome::kMarkerReached, line};
    return;
  }
  if (absl::StrContains(line, "Kernel panic - not syncing")) {
    verdict_ = Verdict{BootOutcome::kKernelPanic, line};
    return;
  }
  if (kernel_started_) {
    for (std::string_view p : kInitramfsPatterns) {
      if (absl::StrContains(line, AV(p))) {
        verdict_ = Verdict{BootOutcome::kStuckInInitramfs, line};
        return;
      }
    }
    return;
  }
  for (std::string_view p : kLoaderPatterns) {
    if (absl::StrContains(line, AV(p))) {
      verdict_ = Verdict{BootOutcome::kBootLoaderFailure, line};
      return;
    }
  }
  if (first_loader_error_.empty() && absl::StrContains(line, "error: ")) {
    first_loader_error_ = line;
  }
}

void SerialClassifier::ScanFirmwareLine(std::string_view raw) {
  if (verdict_.has_value() || kernel_started_) return;
  std::string line = CleanLine(raw);
  if (absl::StrContains(line, "No bootable device")) {
    verdict_ = Verdict{BootOutcome::kBootLoaderFailure,
                       absl::StrCat("firmware: ", line)};
  } else if (first_loader_error_.empty() &&
             absl::StartsWith(line, "Boot failed")) {
    first_loader_error_ = absl::StrCat("firmware: ", line);
  }
}

Verdict SerialClassifier::Finish(bool deadline_passed) {
  if (!serial_partial_.empty()) {
    std::string rest = std::move(serial_partial_);
    serial_partial_.clear();
    ScanSerialLine(rest);
  }
  if (!firmware_partial_.empty()) {
    std::string rest = std::move(firmware_partial_);
    firmware_partial_.clear();
    ScanFirmwareLine(rest);
  }
  if (verdict_.has_value()) return *verdict_;
  if (!kernel_started_) {
    std::string why = first_loader_error_.empty()
                          ? std::string("no kernel output")
                          : first_loader_error_;
    return Verdict{BootOutcome::kBootLoaderFailure,
                   absl::StrCat(why, deadline_passed ? " (before the deadline)"
                                                     : " (QEMU exited)")};
  }
  if (deadline_passed) {
    return Verdict{BootOutcome::kTimeout,
                   "kernel started; no marker before the deadline"};
  }
  return Verdict{BootOutcome::kGuestExited,
                 "kernel started; QEMU exited without the marker"};
}

}  // namespace cairn::boot
