// UTF-8 checks for text that goes into proto3 `string` fields (which must
// be valid UTF-8) but may quote bytes from a backup - file names, labels -
// which need not be.
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_UTF8_H_
#define CAIRN_COMMON_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace cairn {

// The length of the well-formed UTF-8 sequence at s[i] (1-4; no overlong
// forms, no surrogates, at most U+10FFFF), or 0 if there is none.
// REQUIRES: i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Valid UTF-8 as protobuf checks it when parsing a `string` field.
bool IsValidUtf8(std::string_view s);

// `s` for a message or a `string` field: well-formed UTF-8 kept, control
// characters and every byte not part of a well-formed sequence written as
// "\xNN".
std::string PrintableUtf8(std::string_view s);

}  // namespace cairn

#endif  // CAIRN_COMMON_UTF8_H_
