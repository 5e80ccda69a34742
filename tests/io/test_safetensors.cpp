// The safetensors reader and writer: exact bytes, round trips, every kind of bad input with its
// message, atomic writes, and a fuzz test of mutated files.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "io/safetensors.h"

namespace io = lethe::io;
namespace fs = std::filesystem;

#ifndef LETHE_IO_FUZZ_CASES
#define LETHE_IO_FUZZ_CASES 100000
#endif

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != s.npos;
}

// The message of the io::Error `f` throws; "" when it throws nothing; "NOT io::Error: ..." for
// any other exception.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const io::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT io::Error: ") + e.what();
  }
  return "";
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

// A file of `header` (its length prefixed) and `data`.
std::string file_of(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// Header text and data of a valid file.
struct Split {
  std::string header, data;
};

Split split(const std::string& file) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  return {file.substr(8, n), file.substr(8 + n)};
}

const char* const kBad = "bad.safetensors";

// Parsing `bytes` fails with a message that names the file and holds every one of `parts`.
void expect_error(const std::string& bytes, const std::vector<std::string>& parts) {
  const std::string m = error_of([&] { io::parse_safetensors(bytes, kBad); });
  INFO("message: " << m);
  CHECK(m.rfind(std::string(kBad) + ": ", 0) == 0);
  for (const std::string& p : parts) CHECK_MESSAGE(contains(m, p), "missing: " << p);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("lethe-io-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Deterministic bytes for tensor number `k`.
std::string pattern(size_t bytes, int k) {
  std::string s(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) s[i] = static_cast<char>((i * 31 + 7 + k * 101) & 0xFF);
  return s;
}

const char* const kAllDtypes[] = {"F64", "F32",  "F16", "BF16", "I64", "I32",     "I16",    "I8",
                                  "U8",  "BOOL", "U64", "U32",  "U16", "F8_E4M3", "F8_E5M2"};

struct Owned {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::vector<io::TensorToWrite> views(const std::vector<Owned>& ts) {
  std::vector<io::TensorToWrite> out;
  for (const Owned& t : ts)
    out.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  return out;
}

// Every tensor of `ts` is in `f` with its dtype, shape and bytes, laid out in the order given.
void check_same(const io::SafetensorsFile& f, const std::vector<Owned>& ts) {
  REQUIRE(f.tensors().size() == ts.size());
  size_t offset = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const io::TensorView* v = f.find(ts[i].name);
    REQUIRE(v != nullptr);
    CHECK(v->name == ts[i].name);
    CHECK(v->dtype == ts[i].dtype);
    CHECK(v->shape == ts[i].shape);
    CHECK(v->begin == offset);
    CHECK(v->end - v->begin == ts[i].bytes.size());
    CHECK(std::string(reinterpret_cast<const char*>(f.data(*v)), v->end - v->begin) == ts[i].bytes);
    offset = v->end;
  }
  CHECK(f.data_size() == offset);
}

std::vector<Owned> every_dtype() {
  const std::vector<std::vector<int64_t>> shapes = {{}, {3}, {2, 3}, {0}, {4, 0, 2}, {1, 1, 5}};
  std::vector<Owned> ts;
  int k = 0;
  for (const char* dt : kAllDtypes) {
    for (const auto& shape : shapes) {
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      const size_t bytes = static_cast<size_t>(numel) * io::dtype_size(dt);
      ts.push_back({std::string(dt) + ".t" + std::to_string(k), dt, shape, pattern(bytes, k)});
      ++k;
    }
  }
  return ts;
}

}  // namespace

TEST_CASE("dtype sizes, and unknown dtypes refused") {
  CHECK(io::dtype_size("F64") == 8);
  CHECK(io::dtype_size("I64") == 8);
  CHECK(io::dtype_size("U64") == 8);
  CHECK(io::dtype_size("F32") == 4);
  CHECK(io::dtype_size("I32") == 4);
  CHECK(io::dtype_size("U32") == 4);
  CHECK(io::dtype_size("F16") == 2);
  CHECK(io::dtype_size("BF16") == 2);
  CHECK(io::dtype_size("I16") == 2);
  CHECK(io::dtype_size("U16") == 2);
  CHECK(io::dtype_size("I8") == 1);
  CHECK(io::dtype_size("U8") == 1);
  CHECK(io::dtype_size("BOOL") == 1);
  CHECK(io::dtype_size("F8_E4M3") == 1);
  CHECK(io::dtype_size("F8_E5M2") == 1);
  const std::string m = error_of([] { io::dtype_size("f32"); });
  CHECK(contains(m, "unknown safetensors dtype 'f32'"));
  CHECK(contains(m, "F32"));
}

TEST_CASE("round trip of every dtype, scalars, empty tensors and zero-size shapes") {
  const std::vector<Owned> ts = every_dtype();
  const std::string bytes = io::serialize_safetensors(views(ts), {});
  CHECK(split(bytes).header.size() % 8 == 0);  // padded with spaces
  CHECK(split(bytes).header.back() == ' ');
  const io::SafetensorsFile f = io::parse_safetensors(bytes, "memory");
  check_same(f, ts);
  CHECK(f.metadata().empty());
  CHECK(f.source() == "memory");
  CHECK(f.find("nope") == nullptr);
  // tensors() is in data-offset order: the order given, but for zero-byte tensors at the same
  // offset, which come by name.
  CHECK(std::is_sorted(f.tensors().begin(), f.tensors().end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  }));

  TempDir dir;
  const std::string path = dir / "all.safetensors";
  io::write_safetensors(path, views(ts), {});
  CHECK(slurp(path) == bytes);
  const io::SafetensorsFile g = io::read_safetensors(path);
  check_same(g, ts);
  CHECK(g.source() == path);
}

TEST_CASE("round trip of an empty file list and of metadata") {
  const std::string empty = io::serialize_safetensors({}, {});
  CHECK(empty == le64(8) + "{}      ");  // the reference's test_empty, byte for byte
  CHECK(io::parse_safetensors(empty, "e").tensors().empty());

  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"", ""},
      {"quotes \" and \\ and \n newline", "tab\there"},
      {"unicode \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "z\xc3\xbc"},
      {std::string("nul\0inside", 10), std::string("v\0", 2)}};
  const float x[3] = {1.5f, -2.0f, 0.25f};
  const std::string bytes = io::serialize_safetensors({{"x", "F32", {3}, x, sizeof x}}, metadata);
  const io::SafetensorsFile f = io::parse_safetensors(bytes, "m");
  CHECK(f.metadata() == metadata);
  float back[3];
  std::memcpy(back, f.data(*f.find("x")), sizeof back);
  CHECK(back[0] == 1.5f);
  CHECK(back[1] == -2.0f);
  CHECK(back[2] == 0.25f);
}

TEST_CASE("the bytes of a small file, against a hand-written expectation") {
  const float b[2] = {1.0f, -2.0f};
  const int16_t a = 0x0102;
  const std::string bytes = io::serialize_safetensors(
      {{"b", "F32", {2}, b, sizeof b}, {"a", "I16", {}, &a, sizeof a}}, {{"format", "pt"}});
  // 138 bytes of JSON (keys sorted, no spaces), 6 spaces to 144 = 0x90; then b (laid out first,
  // as given) and a, little-endian.
  const std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) +
                               "{\"__metadata__\":{\"format\":\"pt\"},"
                               "\"a\":{\"data_offsets\":[8,10],\"dtype\":\"I16\",\"shape\":[]},"
                               "\"b\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[2]}}" +
                               "      " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x02\x01", 10);
  CHECK(bytes == expected);
  const io::SafetensorsFile f = io::parse_safetensors(bytes, "small");
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.tensors()[0].name == "b");
  CHECK(f.tensors()[1].name == "a");
  CHECK(f.tensors()[1].shape.empty());
}

TEST_CASE("files written by the reference implementation are read") {
  // Byte for byte from huggingface/safetensors' own tests (safetensors/src/tensor.rs).
  const std::string data24 =
      std::string("\0\0\0\0\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40\0\0\xa0\x40", 24);
  {
    const io::SafetensorsFile f = io::parse_safetensors(
        le64(64) + "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}" +
            data24,
        "test_serialization");
    const io::TensorView* t = f.find("attn.0");
    REQUIRE(t != nullptr);
    CHECK(t->shape == std::vector<int64_t>{1, 2, 3});
    float v[6];
    std::memcpy(v, f.data(*t), sizeof v);
    for (int i = 0; i < 6; ++i) CHECK(v[i] == static_cast<float>(i));
  }
  {
    const io::SafetensorsFile f = io::parse_safetensors(
        le64(72) +
            "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       " +
            data24,
        "test_serialization_forced_alignement");
    CHECK(f.find("attn0")->shape == std::vector<int64_t>{1, 1, 2, 3});
  }
  {
    const io::SafetensorsFile f = io::parse_safetensors(
        le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ", "test_empty");
    CHECK(f.metadata().at("framework") == "pt");
    CHECK(f.tensors().empty());
  }
  {
    const io::SafetensorsFile f = io::parse_safetensors(
        std::string("<\0\0\0\0\0\0\0", 8) +
            "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}" +
            std::string(16, '\0'),
        "docstring");
    CHECK(f.find("test")->end == 16);
  }
}

TEST_CASE("header order does not matter: tensors come back sorted by offset") {
  const std::string header =
      " {\n  \"z\": {\"data_offsets\": [4, 4], \"dtype\": \"F32\", \"shape\": [0, 3]},\n"
      "  \"c\": {\"shape\": [1], \"dtype\": \"U8\", \"data_offsets\": [4, 5]},\n"
      "  \"__metadata__\": null,\n"
      "  \"a\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [0, 4]},\n"
      "  \"y\": {\"dtype\": \"BOOL\", \"shape\": [0], \"data_offsets\": [0, 0]},\n"
      "  \"nam\\u00e9\\n\": {\"dtype\": \"I8\", \"shape\": [0], \"data_offsets\": [5, 5]}\n} "
      "\t\r\n";
  const io::SafetensorsFile f = io::parse_safetensors(file_of(header, "abcde"), "any order");
  std::vector<std::string> names;
  for (const io::TensorView& t : f.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"y", "a", "z", "c", "nam\xc3\xa9\n"});
  CHECK(f.metadata().empty());  // null means none, as in the reference
  CHECK(*f.data(*f.find("c")) == 'e');
}

TEST_CASE("large but valid headers are read: a long shape, many tensors") {
  std::string shape = "[";
  for (int i = 0; i < 100000; ++i) shape += i ? ",1" : "1";
  shape += "]";
  const io::SafetensorsFile f = io::parse_safetensors(
      file_of("{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,4]}}", "abcd"),
      "long");
  CHECK(f.find("w")->shape.size() == 100000);

  std::vector<Owned> ts;
  for (int i = 0; i < 3000; ++i)
    ts.push_back({"layer." + std::to_string(i), "U8", {1}, pattern(1, i)});
  check_same(io::parse_safetensors(io::serialize_safetensors(views(ts), {}), "many"), ts);
}

TEST_CASE("bad input: framing (length, size, UTF-8)") {
  expect_error("", {"the file is 0 bytes, too short for the 8-byte header length"});
  expect_error("1234567", {"the file is 7 bytes"});
  expect_error(le64(100000001) + "{}",
               {"header length is 100000001 bytes, above the format's limit of 100000000"});
  expect_error(le64(~uint64_t{0}) + "{}", {"header length is 18446744073709551615 bytes, above"});
  expect_error(le64(100000000) + "{}",
               {"header length is 100000000 bytes, but only 2 bytes follow"});
  expect_error(le64(20) + "{}", {"header length is 20 bytes, but only 2 bytes follow"});
  expect_error(le64(9) + "{}", {"but only 2 bytes follow"});
  expect_error(file_of("{\"a\xff\":{}}"), {"not valid UTF-8 (byte 0xff at header offset 3)"});
  expect_error(file_of("{\"\xc0\xaf\":{}}"), {"not valid UTF-8 (byte 0xc0"});      // overlong '/'
  expect_error(file_of("{\"\xed\xa0\x80\":{}}"), {"not valid UTF-8 (byte 0xed"});  // a surrogate
  expect_error(file_of("{\"\xf4\x90\x80\x80\":{}}"), {"not valid UTF-8 (byte 0xf4"});  // > U+10FFFF
  expect_error(file_of("{}\xe2\x82"),
               {"not valid UTF-8 (byte 0xe2 at header offset 2)"});  // cut short
  expect_error(file_of("{\"\x80\":{}}"), {"not valid UTF-8 (byte 0x80"});
}

TEST_CASE("bad input: not JSON, or not an object") {
  expect_error(file_of(""), {"the header is not valid JSON", "unexpected end of input"});
  expect_error(file_of("{\"a\":"), {"the header is not valid JSON"});
  expect_error(file_of("{} x"), {"the header is not valid JSON"});
  expect_error(file_of("{/*c*/}"), {"the header is not valid JSON"});
  expect_error(file_of("{'a':1}"), {"the header is not valid JSON"});
  expect_error(file_of("{\"__metadata__\":{\"k\":\"v\",}}"), {"the header is not valid JSON"});
  expect_error(file_of("{\"a\":\"\\ud800\"}"), {"the header is not valid JSON"});
  expect_error(file_of("{\"a\":1e999}"), {"not valid JSON"});
  expect_error(file_of("[]"), {"the header must be a JSON object, found an array"});
  expect_error(file_of("\"x\""), {"found the string 'x'"});
  expect_error(file_of("null"), {"must be a JSON object, found null"});
  expect_error(file_of("12"), {"must be a JSON object, found 12"});
  // Deep nesting stops at the first value that cannot be right.
  expect_error(file_of(std::string(1000000, '[')), {"must be a JSON object, found an array"});
  expect_error(file_of("{\"w\":" + std::string(1000000, '[')), {"tensor 'w': expected an object"});
  expect_error(file_of("{\"w\":{\"dtype\":\"F32\",\"shape\":" + std::string(1000000, '[')),
               {"tensor 'w': shape[0] must be a non-negative integer, found an array"});
}

TEST_CASE("bad input: tensor entries") {
  const auto t = [](const std::string& body) {
    return file_of("{\"w\":" + body + "}", std::string(16, 'd'));
  };
  expect_error(t("3"), {"tensor 'w': expected an object {dtype, shape, data_offsets}, found 3"});
  expect_error(t("[]"), {"tensor 'w': expected an object", "found an array"});
  expect_error(t("\"F32\""), {"tensor 'w': expected an object", "found the string 'F32'"});
  expect_error(t("{\"shape\":[4],\"data_offsets\":[0,16]}"), {"tensor 'w': missing field 'dtype'"});
  expect_error(t("{\"dtype\":\"F32\",\"data_offsets\":[0,16]}"),
               {"tensor 'w': missing field 'shape'"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4]}"),
               {"tensor 'w': missing field 'data_offsets'"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"offsets\":[0,16]}"),
               {"tensor 'w': unexpected field 'offsets'"});
  expect_error(t("{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"),
               {"tensor 'w': field 'dtype' appears twice"});
  expect_error(t("{\"dtype\":5,\"shape\":[4],\"data_offsets\":[0,16]}"),
               {"tensor 'w': dtype must be a string such as \"F32\", found 5"});
  expect_error(t("{\"dtype\":\"F128\",\"shape\":[4],\"data_offsets\":[0,16]}"),
               {"tensor 'w': unknown dtype 'F128' (expected one of F64, F32"});
  expect_error(t("{\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]}"),
               {"tensor 'w': unknown dtype 'f32'"});
  expect_error(
      t("{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}"),
      {"tensor 'w': shape must be an array of non-negative integers, found the string '4'"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4,-1],\"data_offsets\":[0,16]}"),
               {"tensor 'w': shape[1] must be a non-negative integer, found -1"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-0,16]}"),
               {"tensor 'w': data_offsets[0] must be a non-negative integer, found -0"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}"),
               {"tensor 'w': shape[0] must be a non-negative integer, found 4.0"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,16]}"),
               {"shape[0]", "found 2e0"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,16]}"),
               {"shape[0]", "found true"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,16]}"),
               {"shape[0]", "found null"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[[4]],\"data_offsets\":[0,16]}"),
               {"shape[0]", "found an array"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,16]}"),
               {"tensor 'w': shape[0] is 9223372036854775808, above 2^63 - 1"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,16]}"),
               {"tensor 'w': shape[0] must be a non-negative integer, found 18446744073709551616"});
  expect_error(
      t("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}"),
      {"tensor 'w': shape [4294967296, 4294967296] has more elements than 64 bits can count"});
  // Folded in order, like the reference: the overflow is found before the zero.
  expect_error(t("{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}"),
               {"has more elements than 64 bits can count"});
  expect_error(
      t("{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}"),
      {"tensor 'w': shape [4611686018427387904] of F32 needs more bytes than 64 bits can count"});
  expect_error(
      t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":\"0,16\"}"),
      {"tensor 'w': data_offsets must be two integers [begin, end], found the string '0,16'"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16]}"),
               {"tensor 'w': data_offsets must be two integers [begin, end], found 1"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[]}"),
               {"data_offsets must be two integers", "found 0"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,16]}"),
               {"tensor 'w': data_offsets must be two integers [begin, end], found more"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-1,16]}"),
               {"tensor 'w': data_offsets[0] must be a non-negative integer, found -1"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16.5]}"),
               {"tensor 'w': data_offsets[1] must be a non-negative integer, found 16.5"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}"),
               {"tensor 'w': data_offsets [16, 0] begin after they end"});
  expect_error(t("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}"),
               {"tensor 'w': data_offsets [0, 12] hold 12 bytes, but shape [4] of F32 needs 16"});
  expect_error(t("{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]}"),
               {"tensor 'w': data_offsets [0, 32] end past the data section, which has 16 bytes"});
  expect_error(t("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551614,"
                 "18446744073709551615]}"),
               {"tensor 'w': data_offsets [18446744073709551614, 18446744073709551615] end past "
                "the data section"});
  // Names in messages are quoted with control bytes escaped.
  expect_error(file_of("{\"a\\nb'\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}"),
               {"tensor 'a\\x0ab\\'': unknown dtype 'X'"});
}

TEST_CASE("bad input: tensors that overlap, leave holes or do not cover the data") {
  const std::string f4a = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
  const std::string f4b = "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
  expect_error(file_of("{" + f4a + "[0,8]}," + f4b + "[4,12]}}", std::string(12, 'd')),
               {"tensor 'b': data_offsets [4, 12] overlap tensor 'a' at [0, 8]"});
  expect_error(file_of("{" + f4a + "[0,8]}," + f4b + "[0,8]}}", std::string(8, 'd')),
               {"tensor 'b': data_offsets [0, 8] overlap tensor 'a' at [0, 8]"});
  expect_error(
      file_of("{" + f4a + "[0,8]},\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
              std::string(8, 'd')),
      {"tensor 'z': data_offsets [4, 4] overlap tensor 'a' at [0, 8]"});
  expect_error(file_of("{" + f4a + "[4,12]}}", std::string(12, 'd')),
               {"tensor 'a': data_offsets [4, 12] leave a hole: bytes [0, 4) of the data section "
                "belong to no tensor"});
  expect_error(file_of("{" + f4a + "[0,8]}," + f4b + "[12,20]}}", std::string(20, 'd')),
               {"tensor 'b': data_offsets [12, 20] leave a hole: bytes [8, 12)"});
  expect_error(file_of("{" + f4a + "[0,8]}}", std::string(12, 'd')),
               {"bytes [8, 12) at the end of the data section belong to no tensor"});
  expect_error(file_of("{}", "xyz"),
               {"bytes [0, 3) at the end of the data section belong to no tensor"});
  expect_error(file_of("{\"__metadata__\":{}}   ", "x"), {"bytes [0, 1) at the end"});
}

TEST_CASE("bad input: duplicate names and bad __metadata__") {
  const std::string w = "{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
  expect_error(file_of("{\"w\":" + w + ",\"w\":" + w + "}"),
               {"tensor 'w' appears twice in the header"});
  expect_error(file_of("{\"__metadata__\":{},\"__metadata__\":{}}"),
               {"__metadata__ appears twice"});
  expect_error(file_of("{\"__metadata__\":3}"),
               {"__metadata__ must be an object mapping strings to strings, found 3"});
  expect_error(file_of("{\"__metadata__\":[\"a\"]}"),
               {"__metadata__ must be an object", "found an array"});
  expect_error(file_of("{\"__metadata__\":{\"k\":1}}"),
               {"__metadata__ entry 'k' must be a string, found 1"});
  expect_error(file_of("{\"__metadata__\":{\"k\":null}}"),
               {"__metadata__ entry 'k' must be a string, found null"});
  expect_error(file_of("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}"),
               {"__metadata__ entry 'k'", "found an object"});
  expect_error(file_of("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"),
               {"__metadata__ key 'k' appears twice"});
}

TEST_CASE("reading files: errors name the path") {
  TempDir dir;
  const std::string missing = dir / "missing.safetensors";
  std::string m = error_of([&] { io::read_safetensors(missing); });
  CHECK(contains(m, missing + ": cannot open for reading: No such file or directory"));
  m = error_of([&] { io::read_safetensors(dir.path.string()); });
  CHECK(contains(m, dir.path.string() + ": not a regular file"));
  const std::string fifo = dir / "fifo";  // no writer: a blocking open would wait forever
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(contains(error_of([&] { io::read_safetensors(fifo); }), fifo + ": not a regular file"));
  CHECK(contains(error_of([] { io::read_safetensors("/dev/zero"); }),
                 "/dev/zero: not a regular file"));
  const std::string link = dir / "link";
  fs::create_directory_symlink(dir.path, link);
  CHECK(contains(error_of([&] { io::read_safetensors(link); }), link + ": not a regular file"));

  const float x[2] = {1, 2};
  const std::string good = io::serialize_safetensors({{"x", "F32", {2}, x, sizeof x}}, {});
  const std::string cut = dir / "cut.safetensors";
  spit(cut, good.substr(0, good.size() - 1));
  CHECK(contains(
      error_of([&] { io::read_safetensors(cut); }),
      cut + ": tensor 'x': data_offsets [0, 8] end past the data section, which has 7 bytes"));
}

TEST_CASE("writing refuses bad tensors, naming the file and the tensor, and writes nothing") {
  TempDir dir;
  const std::string path = dir / "out.safetensors";
  const float x[4] = {1, 2, 3, 4};
  const auto refuse = [&](std::vector<io::TensorToWrite> ts, const std::string& part,
                          std::map<std::string, std::string> metadata = {}) {
    const std::string m = error_of([&] { io::write_safetensors(path, ts, metadata); });
    INFO("message: " << m);
    CHECK(m.rfind(path + ": ", 0) == 0);
    CHECK(contains(m, part));
    const std::string s = error_of([&] { io::serialize_safetensors(ts, metadata); });
    CHECK(s.rfind("serialize_safetensors: ", 0) == 0);
    CHECK(contains(s, part));
    CHECK(listing(dir.path).empty());
  };
  refuse({{"", "F32", {4}, x, 16}}, "a tensor has an empty name");
  refuse({{"__metadata__", "F32", {4}, x, 16}}, "tensor '__metadata__': the name is reserved");
  refuse({{"w", "F32", {4}, x, 16}, {"w", "F32", {4}, x, 16}},
         "tensor 'w': the name appears twice");
  refuse({{"w\xff", "F32", {4}, x, 16}}, "tensor 'w\\xff': the name is not valid UTF-8");
  refuse({{"w", "F128", {4}, x, 16}}, "tensor 'w': unknown dtype 'F128'");
  refuse({{"w", "F32", {4, -1}, x, 16}},
         "tensor 'w': shape[1] is -1, expected a non-negative size");
  refuse({{"w", "F32", {2}, x, 16}}, "tensor 'w': has 16 bytes, but shape [2] of F32 needs 8");
  refuse({{"w", "F32", {4}, nullptr, 16}}, "tensor 'w': its 16 bytes of data are a null pointer");
  refuse({{"w", "U8", {int64_t{1} << 40, int64_t{1} << 40}, x, 16}},
         "more elements than 64 bits can count");
  refuse({}, "__metadata__ key 'k\\xff' is not valid UTF-8", {{"k\xff", "v"}});
  refuse({}, "__metadata__ value of 'k' is not valid UTF-8", {{"k", "v\xc3"}});
  // Zero bytes need no pointer.
  io::write_safetensors(path, {{"e", "F32", {0, 4}, nullptr, 0}}, {});
  CHECK(io::read_safetensors(path).find("e")->shape == std::vector<int64_t>{0, 4});
}

TEST_CASE("atomic write: replaces the old file and leaves no temporary") {
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  const float v1[2] = {1, 2}, v2[3] = {3, 4, 5};
  io::write_safetensors(path, {{"v", "F32", {2}, v1, sizeof v1}}, {{"step", "1"}});
  io::write_safetensors(path, {{"v", "F32", {3}, v2, sizeof v2}}, {{"step", "2"}});
  CHECK(listing(dir.path) == std::set<std::string>{"m.safetensors"});
  const io::SafetensorsFile f = io::read_safetensors(path);
  CHECK(f.metadata().at("step") == "2");
  CHECK(f.find("v")->shape == std::vector<int64_t>{3});
  // A relative path in the current directory (its directory is ".").
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  io::write_safetensors("rel.safetensors", {{"v", "F32", {2}, v1, sizeof v1}}, {});
  fs::current_path(cwd);
  CHECK(io::read_safetensors(dir / "rel.safetensors").find("v") != nullptr);
}

TEST_CASE("atomic write: every failure leaves the last good file and no temporary") {
  TempDir dir;
  const float v1[2] = {1, 2};
  const std::string good = io::serialize_safetensors({{"v", "F32", {2}, v1, sizeof v1}}, {});
  const std::vector<float> big(1 << 16, 0.5f);
  const std::vector<io::TensorToWrite> big_file = {
      {"big", "F32", {1 << 16}, big.data(), big.size() * sizeof(float)}};

  SUBCASE("the parent is a regular file (root cannot bypass this)") {
    const std::string plain = dir / "plain";
    spit(plain, "not a directory");
    const std::string path = plain + "/m.safetensors";
    const std::string m = error_of([&] { io::write_safetensors(path, big_file, {}); });
    CHECK(m.rfind(path + ": cannot create the temporary file " + path + ".tmp-", 0) == 0);
    CHECK(contains(m, "Not a directory"));
    CHECK(slurp(plain) == "not a directory");
    CHECK(listing(dir.path) == std::set<std::string>{"plain"});
  }
  SUBCASE("the target is a directory: the rename fails after the data are written") {
    const std::string path = dir / "m.safetensors";
    fs::create_directory(path);
    spit(path + "/keep", "kept");
    const std::string m = error_of([&] { io::write_safetensors(path, big_file, {}); });
    CHECK(m.rfind(path + ": cannot rename the temporary file " + path + ".tmp-", 0) == 0);
    CHECK(contains(m, "Is a directory"));
    CHECK(contains(m, "the previous file, if any, is untouched"));
    CHECK(listing(dir.path) == std::set<std::string>{"m.safetensors"});
    CHECK(slurp(path + "/keep") == "kept");
  }
  SUBCASE("the disk refuses the data midway (a file-size limit, which binds root too)") {
    const std::string path = dir / "m.safetensors";
    spit(path, good);
    struct rlimit old {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit small = old;
    small.rlim_cur = 4096;
    auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    const std::string m = error_of([&] { io::write_safetensors(path, big_file, {}); });
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, old_handler);
    CHECK(m.rfind(path + ": cannot write the temporary file " + path + ".tmp-", 0) == 0);
    CHECK(contains(m, "File too large"));
    CHECK(slurp(path) == good);
    CHECK(listing(dir.path) == std::set<std::string>{"m.safetensors"});
  }
  SUBCASE("the temporary's name is too long for the file system") {
    const std::string path = dir / std::string(240, 'm');
    spit(path, good);
    const std::string m = error_of([&] { io::write_safetensors(path, big_file, {}); });
    CHECK(m.rfind(path + ": cannot create the temporary file", 0) == 0);
    CHECK(contains(m, "File name too long"));
    CHECK(slurp(path) == good);
    CHECK(listing(dir.path).size() == 1);
  }
  SUBCASE("invalid tensors: nothing is created") {
    const std::string path = dir / "m.safetensors";
    spit(path, good);
    CHECK(contains(error_of([&] {
                     io::write_safetensors(path, {{"v", "F32", {3}, v1, 8}}, {});
                   }),
                   "needs 12"));
    CHECK(slurp(path) == good);
    CHECK(listing(dir.path).size() == 1);
  }
}

TEST_CASE("atomic write: an existing file with the temporary's name is never clobbered") {
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  const float v[2] = {7, 8};
  const std::string pid = std::to_string(::getpid());
  const std::string squatter = path + ".tmp-" + pid + "-00000000000000aa";
  const std::string link = path + ".tmp-" + pid + "-00000000000000bb";
  const std::string victim = dir / "victim";
  spit(squatter, "another writer's temporary");
  spit(victim, "victim");
  fs::create_symlink(victim, link);  // O_EXCL refuses to follow it
  const std::vector<uint64_t> suffixes = {0xaa, 0xbb, 0xaa, 0xcc};
  size_t calls = 0;
  io::detail::write_safetensors(path, {{"v", "F32", {2}, v, sizeof v}}, {},
                                [&] { return suffixes[std::min(calls++, suffixes.size() - 1)]; });
  CHECK(calls == 4);
  CHECK(slurp(squatter) == "another writer's temporary");
  CHECK(slurp(victim) == "victim");
  CHECK(fs::is_symlink(link));
  CHECK(!fs::exists(path + ".tmp-" + pid + "-00000000000000cc"));
  CHECK(io::read_safetensors(path).find("v") != nullptr);
  CHECK(listing(dir.path).size() == 4);

  // When every name is taken, it gives up with the OS error rather than loop.
  const std::string m = error_of([&] {
    io::detail::write_safetensors(path, {{"v", "F32", {2}, v, sizeof v}}, {},
                                  [] { return uint64_t{0xaa}; });
  });
  CHECK(contains(m, path + ": cannot create the temporary file " + squatter + ": File exists"));
}

namespace {

// splitmix64: small, deterministic on every platform.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

// Everything a successful parse promises, checked against the bytes it was given: returns "" or
// what is wrong.
std::string check_in_bounds(const io::SafetensorsFile& f, size_t file_size) {
  if (f.data_size() > file_size) return "data section larger than the file";
  size_t cursor = 0;
  uint64_t sum = 0;
  for (const io::TensorView& t : f.tensors()) {
    if (t.begin != cursor) return "tensor " + t.name + " does not start where the last ended";
    if (t.end < t.begin || t.end > f.data_size()) return "tensor " + t.name + " out of bounds";
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return "negative dimension";
      if (d != 0 && numel > UINT64_MAX / static_cast<uint64_t>(d)) return "numel overflows";
      numel *= static_cast<uint64_t>(d);
    }
    if (numel > UINT64_MAX / io::dtype_size(t.dtype) ||
        numel * io::dtype_size(t.dtype) != t.end - t.begin) {
      return "tensor " + t.name + " has the wrong byte count";
    }
    const unsigned char* p = f.data(t);
    for (size_t i = 0; i < t.end - t.begin; ++i) sum += p[i];  // ASan sees any stray read
    if (f.find(t.name) != &t) return "find() does not return the tensor";
    cursor = t.end;
  }
  if (cursor != f.data_size()) return "the tensors do not cover the data section";
  return sum == 0xFFFFFFFFFFFFFFFFull ? "impossible" : "";
}

// Spans of the header that are numbers (runs of digits, with a leading minus).
std::vector<std::pair<size_t, size_t>> numbers_in(const std::string& h) {
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < h.size();) {
    if (std::isdigit(static_cast<unsigned char>(h[i])) || h[i] == '-') {
      size_t j = i + 1;
      while (j < h.size() && std::isdigit(static_cast<unsigned char>(h[j]))) ++j;
      spans.push_back({i, j - i});
      i = j;
    } else {
      ++i;
    }
  }
  return spans;
}

// Byte-level damage to a file that may no longer be framed at all.
std::string mutate_raw(std::string raw, Rng& rng, std::string& log) {
  const int op = static_cast<int>(rng.below(4));
  log += "raw" + std::to_string(op) + " ";
  if (op == 0) {
    for (size_t k = 1 + rng.below(3); k > 0 && !raw.empty(); --k) {
      raw[rng.below(raw.size())] ^= static_cast<char>(1 + rng.below(255));
    }
  } else if (op == 1) {
    raw.resize(rng.below(raw.size() + 1));
  } else if (op == 2) {
    for (size_t k = 1 + rng.below(16); k > 0; --k) raw += static_cast<char>(rng.next());
  } else if (raw.size() >= 8) {
    raw.replace(0, 8, le64(rng.below(raw.size() - 7)));
  }
  return raw;
}

std::string mutate(const std::string& file, Rng& rng, std::string& log) {
  uint64_t n = 0;
  for (size_t i = 0; i < 8 && i < file.size(); ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  }
  if (file.size() < 8 || n > file.size() - 8) return mutate_raw(file, rng, log);
  Split s = split(file);
  bool fix_length = rng.below(4) != 0;
  std::string raw;  // set by the byte-level mutations, which act on the whole file
  const int op = static_cast<int>(rng.below(14));
  log += std::to_string(op) + " ";
  static const char* const kNumbers[] = {"0",
                                         "1",
                                         "-1",
                                         "7",
                                         "8",
                                         "1e3",
                                         "2.5",
                                         "-0",
                                         "4",
                                         "18446744073709551615",
                                         "18446744073709551616",
                                         "9223372036854775808",
                                         "4294967296",
                                         "99999999999999999999999"};
  static const char* const kJunk[] = {"{",
                                      "}",
                                      "[",
                                      "]",
                                      "\"",
                                      ",",
                                      ":",
                                      "-",
                                      "0",
                                      "e",
                                      "\\",
                                      "null",
                                      "\"__metadata__\"",
                                      "\"dtype\"",
                                      "\"shape\":[]",
                                      "\xc3",
                                      "\xff",
                                      "\"data_offsets\":[0,0]",
                                      "{\"x\":{}}",
                                      " ",
                                      "\\u0000",
                                      "1.5"};
  static const char* const kDtypeNames[] = {
      "\"F32\"", "\"U8\"", "\"BF16\"", "\"F64\"", "\"BOOL\"", "\"X\"", "\"\"", "3", "\"F8_E4M3\""};
  switch (op) {
    case 0: {  // flip bytes anywhere
      raw = le64(s.header.size()) + s.header + s.data;
      for (size_t k = 1 + rng.below(3); k > 0 && !raw.empty(); --k) {
        raw[rng.below(raw.size())] ^= static_cast<char>(1 + rng.below(255));
      }
      break;
    }
    case 1: {  // truncate
      raw = le64(s.header.size()) + s.header + s.data;
      raw.resize(rng.below(raw.size() + 1));
      break;
    }
    case 2: {  // append
      raw = le64(s.header.size()) + s.header + s.data;
      for (size_t k = 1 + rng.below(16); k > 0; --k) raw += static_cast<char>(rng.next());
      break;
    }
    case 3: {  // a wrong header length
      const uint64_t n = s.header.size();
      const uint64_t choices[] = {n + 1 + rng.below(8),
                                  n - std::min<uint64_t>(n, 1 + rng.below(8)),
                                  0,
                                  ~uint64_t{0},
                                  100000001,
                                  rng.next(),
                                  rng.below(n + s.data.size() + 9),
                                  n + s.data.size(),
                                  n + s.data.size() + 1};
      raw = le64(choices[rng.below(std::size(choices))]) + s.header + s.data;
      break;
    }
    case 4: {  // a header byte becomes a JSON-significant character
      if (s.header.empty()) break;
      static const char kChars[] = "{}[]\",:-0123456789.eE \\ntfu\x80\xff\xc3";
      s.header[rng.below(s.header.size())] = kChars[rng.below(sizeof kChars - 1)];
      break;
    }
    case 5: {  // a number becomes another
      const auto spans = numbers_in(s.header);
      if (spans.empty()) break;
      const auto [at, len] = spans[rng.below(spans.size())];
      s.header.replace(at, len, kNumbers[rng.below(std::size(kNumbers))]);
      break;
    }
    case 6: {  // two numbers swap
      const auto spans = numbers_in(s.header);
      if (spans.size() < 2) break;
      auto a = spans[rng.below(spans.size())], b = spans[rng.below(spans.size())];
      if (a.first > b.first) std::swap(a, b);
      if (a.first == b.first) break;
      const std::string na = s.header.substr(a.first, a.second),
                        nb = s.header.substr(b.first, b.second);
      s.header.replace(b.first, b.second, na);
      s.header.replace(a.first, a.second, nb);
      break;
    }
    case 7: {  // delete a span
      if (s.header.empty()) break;
      const size_t at = rng.below(s.header.size());
      s.header.erase(at, 1 + rng.below(8));
      break;
    }
    case 8: {  // duplicate a span elsewhere (repeats keys and entries)
      if (s.header.empty()) break;
      const size_t at = rng.below(s.header.size());
      const std::string span = s.header.substr(at, 1 + rng.below(60));
      s.header.insert(rng.below(s.header.size() + 1), span);
      break;
    }
    case 9: {  // another dtype
      const size_t at = s.header.find("\"dtype\":");
      if (at == std::string::npos) break;
      size_t from = at + 8;
      while (from < s.header.size() && s.header[from] == ' ') ++from;
      const size_t to = s.header.find_first_of(",}", from);
      if (to == std::string::npos) break;
      s.header.replace(from, to - from, kDtypeNames[rng.below(std::size(kDtypeNames))]);
      break;
    }
    case 10: {  // insert junk
      s.header.insert(rng.below(s.header.size() + 1), kJunk[rng.below(std::size(kJunk))]);
      break;
    }
    case 11: {  // data grows or shrinks by a few bytes
      if (rng.below(2) && !s.data.empty()) {
        s.data.resize(s.data.size() - 1 - rng.below(std::min<size_t>(s.data.size(), 4)));
      } else {
        s.data.append(1 + rng.below(8), '\x5a');
      }
      fix_length = true;
      break;
    }
    case 12:    // a tensor moves, keeping its size: overlaps, holes, past the end
    case 13: {  // a tensor gets an adversarial shape
      nlohmann::json h = nlohmann::json::parse(s.header, nullptr, /*allow_exceptions=*/false);
      if (!h.is_object()) break;
      std::vector<std::string> names;
      for (const auto& [k, v] : h.items()) {
        if (k != "__metadata__" && v.is_object()) names.push_back(k);
      }
      if (names.empty()) break;
      nlohmann::json& t = h[names[rng.below(names.size())]];
      if (op == 12) {
        if (!t.contains("data_offsets") || !t["data_offsets"].is_array() ||
            t["data_offsets"].size() != 2 || !t["data_offsets"][0].is_number_unsigned() ||
            !t["data_offsets"][1].is_number_unsigned()) {
          break;
        }
        const uint64_t b = t["data_offsets"][0], e = t["data_offsets"][1];
        const uint64_t nb = rng.below(s.data.size() + 2);
        t["data_offsets"] = {nb, nb + (e >= b ? e - b : 0)};
      } else {
        static const std::vector<std::vector<uint64_t>> kShapes = {{4294967296, 4294967296},
                                                                   {4611686018427387904},
                                                                   {0, 18446744073709551615ull},
                                                                   {},
                                                                   {1, 1, 1},
                                                                   {3, 0},
                                                                   {2305843009213693952},
                                                                   {65536, 65536, 65536, 65536}};
        t["shape"] = kShapes[rng.below(kShapes.size())];
      }
      s.header = h.dump(rng.below(2) ? -1 : 1);
      break;
    }
  }
  if (!raw.empty() || op <= 3) return raw;
  return le64(fix_length ? s.header.size() : n) + s.header + s.data;
}

}  // namespace

TEST_CASE("fuzz: mutated files parse in bounds or throw io::Error, never anything else") {
  std::vector<std::string> seeds;
  {
    const double d[3] = {1, -2, 3};
    const uint16_t h[4] = {1, 2, 3, 4};
    const int64_t i[2] = {-5, 5};
    const bool b[3] = {true, false, true};
    seeds.push_back(io::serialize_safetensors({{"w", "F64", {3}, d, sizeof d},
                                               {"h", "BF16", {2, 2}, h, sizeof h},
                                               {"i", "I64", {2, 1}, i, sizeof i},
                                               {"mask", "BOOL", {3}, b, sizeof b},
                                               {"empty", "F32", {0, 7}, nullptr, 0}},
                                              {{"format", "pt"}, {"step", "12"}}));
    seeds.push_back(io::serialize_safetensors({}, {}));
    seeds.push_back(io::serialize_safetensors({}, {{"only", "metadata"}}));
    const float s = 2.5f;
    seeds.push_back(io::serialize_safetensors({{"s", "F32", {}, &s, sizeof s},
                                               {"z0", "U8", {0}, nullptr, 0},
                                               {"z1", "I16", {3, 0}, nullptr, 0}},
                                              {}));
    seeds.push_back(le64(64) +
                    "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}" +
                    std::string(24, '\x11'));
    seeds.push_back(
        file_of(" {\n \"b\": {\"shape\": [2], \"dtype\": \"U16\", \"data_offsets\": [2, 6]},\n"
                " \"__metadata__\": {\"k\": \"v\"},\n"
                " \"a\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [0, 2]}\n}  ",
                "abcdef"));
  }
  for (const std::string& s : seeds)
    REQUIRE(check_in_bounds(io::parse_safetensors(s, "seed"), s.size()).empty());

  Rng rng{20240518};
  size_t accepted = 0, rejected = 0;
  // How often each check fired, to see that the mutations reach all of them.
  const std::vector<std::string> checks = {"too short",
                                           "above the format's limit",
                                           "bytes follow",
                                           "not valid UTF-8",
                                           "not valid JSON",
                                           "must be a JSON object",
                                           "expected an object",
                                           "missing field",
                                           "unexpected field",
                                           "appears twice",
                                           "unknown dtype",
                                           "dtype must be a string",
                                           "shape must be an array",
                                           "must be a non-negative integer",
                                           "above 2^63",
                                           "than 64 bits can count",
                                           "must be two integers",
                                           "begin after they end",
                                           "bytes, but shape",
                                           "end past the data",
                                           "overlap tensor",
                                           "leave a hole",
                                           "at the end of the data section",
                                           "__metadata__"};
  std::map<std::string, size_t> fired;
  std::string first_failure;
  for (int c = 0; c < LETHE_IO_FUZZ_CASES; ++c) {
    std::string file = seeds[rng.below(seeds.size())];
    std::string log;
    for (size_t k = 1 + rng.below(3); k > 0; --k) file = mutate(file, rng, log);
    try {
      const io::SafetensorsFile f = io::parse_safetensors(file, "fuzz");
      const std::string wrong = check_in_bounds(f, file.size());
      if (!wrong.empty() && first_failure.empty())
        first_failure = "case " + std::to_string(c) + ": " + wrong;
      ++accepted;
    } catch (const io::Error& e) {
      const std::string m = e.what();
      if (m.rfind("fuzz: ", 0) != 0 && first_failure.empty())
        first_failure = "message without the file: " + m;
      bool known = false;
      for (const std::string& check : checks) {
        if (contains(m, check)) {
          ++fired[check];
          known = true;
        }
      }
      if (!known && first_failure.empty()) first_failure = "a message no check expects: " + m;
      ++rejected;
    } catch (const std::exception& e) {
      if (first_failure.empty()) {
        first_failure = "case " + std::to_string(c) + " (ops " + log + ") threw " + e.what();
      }
    }
  }
  std::ostringstream counts;
  for (const std::string& check : checks) counts << "\n  " << fired[check] << "  " << check;
  MESSAGE(LETHE_IO_FUZZ_CASES << " mutated files: " << accepted << " accepted, " << rejected
                              << " rejected:" << counts.str());
  CHECK_MESSAGE(first_failure.empty(), first_failure);
  CHECK(accepted + rejected == static_cast<size_t>(LETHE_IO_FUZZ_CASES));
  CHECK(accepted > 0);
  CHECK(rejected > static_cast<size_t>(LETHE_IO_FUZZ_CASES) / 2);
  for (const std::string& check : checks) CHECK_MESSAGE(fired[check] > 0, "never fired: " << check);
}
