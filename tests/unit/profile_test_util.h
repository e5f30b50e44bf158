// Helpers for the hardware-profile unit tests: the recorded trees under
// tests/data/profiles (see docs/testing-fixtures.md) and scratch
// directories.
#ifndef CAIRN_TESTS_UNIT_PROFILE_TEST_UTIL_H_
#define CAIRN_TESTS_UNIT_PROFILE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "agent/profile_collector.h"
#include "cairn/v1/profile.pb.h"

namespace cairn::profile_test {

inline std::string ShapeRoot(const std::string& shape) {
  return std::string(CAIRN_PROFILE_DATA_DIR) + "/" + shape;
}

// The profile of a recorded shape, collected once per test binary.
inline const v1::HardwareProfile& Shape(const std::string& shape) {
  static auto* cache = new std::map<std::string, v1::HardwareProfile>();
  auto it = cache->find(shape);
  if (it != cache->end()) return it->second;
  CollectOptions o;
  o.root = ShapeRoot(shape);
  o.collected_unix_us = 1;
  auto p = CollectHardwareProfile(o);
  EXPECT_TRUE(p.ok()) << shape << ": " << p.status();
  return (*cache)[shape] = p.ok() ? *p : v1::HardwareProfile();
}

// A scratch directory removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/cairn-profile-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  // Writes `contents` to root-relative `rel`, creating directories.
  void Write(const std::string& rel, const std::string& contents) const {
    std::filesystem::path p = path_ + "/" + rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << contents;
  }
  void Symlink(const std::string& rel, const std::string& target) const {
    std::filesystem::path p = path_ + "/" + rel;
    std::filesystem::create_directories(p.parent_path());
    std::filesystem::create_symlink(target, p);
  }
  // The minimum a collection needs: /proc/cpuinfo and /proc/meminfo.
  void WriteMinimalMachine() const {
    Write(
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
        "model\t\t: 85\nmodel name\t: Test CPU\nflags\t\t: fpu lm nx vmx\n\n");
    Write("proc/meminfo", "MemTotal:        1024 kB\n");
  }

 private:
  std::string path_;
};

// A module directory for libkmod built from a recorded shape: its index
// files, plus an empty file for every module modules.dep names (libkmod
// stats them; the recorded trees keep only the indices). Returns the
// module directory inside `scratch`.
inline std::string MakeModuleTree(const ScratchDir& scratch,
                                  const std::string& shape,
                                  const std::string& kernel) {
  std::string src = ShapeRoot(shape) + "/usr/lib/modules/" + kernel;
  std::string dst = scratch.path() + "/lib/modules/" + kernel;
  std::filesystem::create_directories(dst);
  for (const auto& e : std::filesystem::directory_iterator(src)) {
    std::filesystem::copy_file(e.path(),
                               dst + "/" + e.path().filename().string());
  }
  std::ifstream dep(src + "/modules.dep");
  std::string line;
  while (std::getline(dep, line)) {
    std::string path = line.substr(0, line.find(':'));
    std::filesystem::path p = dst + "/" + path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p).flush();
  }
  return dst;
}

}  // namespace cairn::profile_test

#endif  // CAIRN_TESTS_UNIT_PROFILE_TEST_UTIL_H_
