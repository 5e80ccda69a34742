#include "serialize/serialize.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "framework/error.h"
#include "framework/session.h"
#include "io/safetensors.h"

namespace lethe {
namespace {

constexpr const char* kCheckpointFormat = "lethe-checkpoint/1";

const char* st_dtype(DType t) {
  return t == DType::f32 ? "F32" : t == DType::f64 ? "F64" : "I64";
}

// The session that holds loaded tensors: a CPU session of its own, never current, with no budget,
// so a load takes nothing from a training session's arena.
std::shared_ptr<SessionState> host_session() {
  static thread_local std::weak_ptr<SessionState> cached;
  if (auto s = cached.lock()) return s;
  auto s = std::make_shared<SessionState>(SessionOptions{});
  cached = s;
  return s;
}

int64_t parse_int(const std::map<std::string, std::string>& meta, const std::string& key,
                  const std::string& path) {
  auto it = meta.find(key);
  LETHE_CHECK(it != meta.end(), "load_checkpoint: ", path, " has no '", key, "' in its metadata");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  LETHE_CHECK(!it->second.empty() && end && *end == '\0' && errno == 0, "load_checkpoint: ", path,
              ": '", key, "' is not an integer: '", it->second, "'");
  return v;
}

}  // namespace

void save(const std::string& path, const StateDict& tensors,
          const std::map<std::string, std::string>& metadata) {
  std::vector<std::vector<unsigned char>> bytes;
  bytes.reserve(tensors.size());
  std::vector<io::TensorToWrite> out;
  for (const auto& [name, t] : tensors) {
    bytes.push_back(t.to_bytes());
    io::TensorToWrite w;
    w.name = name;
    w.dtype = st_dtype(t.dtype());
    w.shape = t.shape().dims();
    w.data = bytes.back().data();
    w.bytes = bytes.back().size();
    out.push_back(std::move(w));
  }
  try {
    io::write_safetensors(path, out, metadata);
  } catch (Error& e) {
    e.add_context("save: ");
    throw;
  }
}

Loaded load(const std::string& path) {
  io::SafetensorsFile f = [&] {
    try {
      return io::read_safetensors(path);
    } catch (Error& e) {
      e.add_context("load: ");
      throw;
    }
  }();
  Loaded out;
  out.metadata = f.metadata();
  const auto host = host_session();
  for (const io::TensorView& v : f.tensors()) {
    DType t;
    if (v.dtype == "F32")
      t = DType::f32;
    else if (v.dtype == "F64")
      t = DType::f64;
    else if (v.dtype == "I64")
      t = DType::i64;
    else
      throw Error(
          detail::concat("load: ", path, ": tensor '", v.name, "' is ", v.dtype,
                         "; Lethe holds F32, F64 and I64 tensors (convert it before saving)"));
    out.tensors.insert(v.name,
                       tensor_from_bytes(host, Shape(v.shape), t, f.data(v), v.end - v.begin));
  }
  return out;
}

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& opt,
                     const TrainingProgress& progress) {
  StateDict tensors;
  tensors.insert_all(model.state_dict(), "model.");
  const optim::OptimizerState os = opt.state_dict();
  tensors.insert_all(os.tensors, "optimizer.");
  std::map<std::string, std::string> meta;
  meta["format"] = kCheckpointFormat;
  for (const auto& [k, v] : os.fields) meta["optimizer." + k] = v;
  const auto params = model.parameters();
  const RngState rng =
      (params.empty() ? current_session() : params.front().impl()->session)->rng_state();
  meta["session.seed"] = std::to_string(rng.seed);
  meta["session.step"] = std::to_string(rng.step);
  meta["session.next_stream"] = std::to_string(rng.next_stream);
  meta["progress.step"] = std::to_string(progress.step);
  meta["progress.loader_epoch"] = std::to_string(progress.loader_epoch);
  meta["progress.loader_batch"] = std::to_string(progress.loader_batch);
  meta["progress.scheduler_step"] = std::to_string(progress.scheduler_step);
  for (const auto& [k, v] : progress.extra) meta["extra." + k] = v;
  save(path, tensors, meta);
}

TrainingProgress load_checkpoint(const std::string& path, nn::Module& model,
                                 optim::Optimizer& opt) {
  Loaded l = load(path);
  auto fmt = l.metadata.find("format");
  LETHE_CHECK(
      fmt != l.metadata.end() && fmt->second == kCheckpointFormat, "load_checkpoint: ", path,
      " is not a Lethe training checkpoint (metadata 'format' is ",
      fmt == l.metadata.end() ? std::string("absent") : "'" + fmt->second + "'", ", expected '",
      kCheckpointFormat, "'); load weights with lethe::load and load_state_dict");
  for (const auto& [k, t] : l.tensors)
    LETHE_CHECK(k.rfind("model.", 0) == 0 || k.rfind("optimizer.", 0) == 0,
                "load_checkpoint: ", path, ": tensor '", k,
                "' belongs to neither the model nor the optimizer");
  optim::OptimizerState os;
  os.tensors = l.tensors.with_prefix_removed("optimizer.");
  for (const auto& [k, v] : l.metadata)
    if (k.rfind("optimizer.", 0) == 0) os.fields[k.substr(10)] = v;
  TrainingProgress p;
  RngState rng;
  rng.seed = static_cast<uint64_t>(parse_int(l.metadata, "session.seed", path));
  rng.step = static_cast<uint64_t>(parse_int(l.metadata, "session.step", path));
  rng.next_stream = static_cast<uint64_t>(parse_int(l.metadata, "session.next_stream", path));
  p.step = parse_int(l.metadata, "progress.step", path);
  p.loader_epoch = parse_int(l.metadata, "progress.loader_epoch", path);
  p.loader_batch = parse_int(l.metadata, "progress.loader_batch", path);
  p.scheduler_step = parse_int(l.metadata, "progress.scheduler_step", path);
  for (const auto& [k, v] : l.metadata)
    if (k.rfind("extra.", 0) == 0) p.extra[k.substr(6)] = v;
  // Model first: its strict check names every missing or unexpected key before anything changes.
  // The optimizer checks its whole state before it changes too; only then is the model written.
  const StateDict weights = l.tensors.with_prefix_removed("model.");
  try {
    model.check_state_dict(weights, true);
  } catch (Error& e) {
    e.add_context(detail::concat("load_checkpoint: ", path, ": "));
    throw;
  }
  opt.load_state_dict(os);
  model.load_state_dict(weights, true);
  const auto params = model.parameters();
  (params.empty() ? current_session() : params.front().impl()->session)->set_rng_state(rng);
  return p;
}

}  // namespace lethe
