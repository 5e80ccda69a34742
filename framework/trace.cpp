#include "framework/trace.h"

#include <algorithm>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "framework/error.h"

namespace lethe {
namespace {

// JSON string body (op names are plain identifiers, but a path or a user name may not be).
std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

const char* category(Tracer::Kind k) {
  switch (k) {
    case Tracer::Kind::compute:
      return "compute";
    case Tracer::Kind::recompute:
      return "recompute";
    case Tracer::Kind::update:
      return "update";
    case Tracer::Kind::step:
      return "step";
    case Tracer::Kind::plan:
      return "plan";
    case Tracer::Kind::copy_out:
      return "copy out";
    case Tracer::Kind::copy_in:
      return "copy in";
  }
  return "compute";
}

}  // namespace

Tracer::Tracer(std::string path) : path_(std::move(path)), t0_(std::chrono::steady_clock::now()) {
  // The file is written at the end; an unwritable path is said now, before anything runs.
  {
    const bool existed = std::filesystem::exists(path_);
    std::ofstream probe(path_, std::ios::app);
    const int err = errno;
    LETHE_CHECK(probe.good(), "trace: cannot write '", path_, "': ", std::strerror(err));
    probe.close();
    if (!existed) std::filesystem::remove(path_);
  }
  slices_.reserve(1 << 12);
  counters_.reserve(1 << 12);
}

Tracer::~Tracer() {
  if (written_) return;
  try {
    write();
  } catch (...) {
    // A destructor must not throw; stop_trace() reports write errors.
  }
}

uint32_t Tracer::intern(std::string_view name) {
  for (size_t i = names_.size(); i-- > 0;)  // few distinct names; recent ones repeat most
    if (names_[i] == name) return static_cast<uint32_t>(i);
  names_.emplace_back(name);
  return static_cast<uint32_t>(names_.size() - 1);
}

void Tracer::slice(Kind kind, std::string_view name, int node, uint64_t step, double t0_us,
                   double t1_us, int64_t bytes, int track) {
  slices_.push_back({kind, node, step, t0_us, t1_us, bytes, intern(name), track});
  tracks_ = std::max(tracks_, track + 1);
}

void Tracer::memory(double ts_us, int64_t measured, int64_t predicted) {
  counters_.push_back({ts_us, measured, predicted});
}

void Tracer::tier(double ts_us, int64_t bytes) {
  tier_.push_back({ts_us, bytes});
}

void Tracer::write() {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path_.c_str(), "w"), &std::fclose);
  LETHE_CHECK(f != nullptr, "trace: cannot write '", path_, "'");
  FILE* o = f.get();
  std::fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", o);
  std::fputs(
      "{\"ph\":\"M\",\"pid\":1,\"tid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"lethe "
      "session\"}},\n",
      o);
  std::fputs(
      "{\"ph\":\"M\",\"pid\":1,\"tid\":1,\"name\":\"thread_name\",\"args\":{\"name\":\"executor\"}"
      "}",
      o);
  // Streams past the first (SessionOptions::streams): one track each, after the executor's.
  for (int t = 1; t < tracks_; ++t)
    std::fprintf(o,
                 ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{"
                 "\"name\":\"stream %d\"}}",
                 t + 1, t);
  std::vector<std::string> names;
  names.reserve(names_.size());
  for (const auto& n : names_) names.push_back(escape(n));
  for (const Slice& s : slices_) {
    // Durations of at least 1 ns so that zero-length ops (views) stay visible and nest.
    const double dur = s.t1 - s.t0 > 1e-3 ? s.t1 - s.t0 : 1e-3;
    std::fprintf(o,
                 ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"cat\":\"%s\",\"name\":\"%s\",\"ts\":%.3f,"
                 "\"dur\":%.3f,"
                 "\"args\":{\"step\":%" PRIu64,
                 s.track + 1, category(s.kind), names[s.name].c_str(), s.t0, dur, s.step);
    if (s.kind != Kind::step && s.kind != Kind::plan) {
      std::fprintf(o, ",\"node\":%d,\"bytes\":%" PRId64, s.node, s.bytes);
      if (s.kind == Kind::recompute) std::fputs(",\"recompute\":true", o);
    }
    std::fputs("}}", o);
  }
  for (const Counter& c : counters_) {
    std::fprintf(o,
                 ",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"arena in "
                 "use\",\"ts\":%.3f,\"args\":{\"bytes\":%" PRId64 "}}",
                 c.ts, c.measured);
    std::fprintf(o,
                 ",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"plan "
                 "predicted\",\"ts\":%.3f,\"args\":{\"bytes\":%" PRId64 "}}",
                 c.ts, c.predicted);
  }
  for (const auto& [ts, bytes] : tier_)
    std::fprintf(o,
                 ",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"second tier in "
                 "use\",\"ts\":%.3f,\"args\":{\"bytes\":%" PRId64 "}}",
                 ts, bytes);
  std::fputs("\n]}\n", o);
  LETHE_CHECK(std::ferror(o) == 0, "trace: error while writing '", path_, "'");
  written_ = true;
}

}  // namespace lethe
