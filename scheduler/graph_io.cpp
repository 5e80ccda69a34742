#include "scheduler/graph_io.h"

#include <climits>
#include <cmath>
#include <fstream>
#include <sstream>

#include "scheduler/streams.h"

namespace lethe::sched {
namespace {

// Bounds on a graph's totals (validate_problem): 2^62 bytes, 1e30 cost units.
constexpr int64_t kMaxGraphBytes = int64_t{1} << 62;
constexpr double kMaxGraphCost = 1e30;

}  // namespace

namespace {

using nlohmann::json;

std::string where_node(size_t index) {
  return "node at index " + std::to_string(index);
}

const json& require(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) throw Error(where + ": missing required field \"" + key + "\"");
  return *it;
}

// Integral JSON numbers only; 400.0 is accepted because some exporters write every number as float.
int64_t as_int(const json& v, const std::string& where, const char* key) {
  // An unsigned number past int64 (2^64-1) would read as a negative one: say what was written.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw Error(where + ": field \"" + key + "\" is " + v.dump() +
                ", more than any graph can hold");
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18)
      return static_cast<int64_t>(d);
  }
  throw Error(where + ": field \"" + key + "\" must be an integer, got " + v.dump());
}

double as_double(const json& v, const std::string& where, const char* key) {
  if (!v.is_number())
    throw Error(where + ": field \"" + key + "\" must be a number, got " + v.dump());
  return v.get<double>();
}

std::string opt_string(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) throw Error(where + ": field \"" + key + "\" must be a string");
  return it->get<std::string>();
}

json parse_text(const std::string& text, const char* what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    throw Error(std::string("bad JSON in ") + what + ": " + e.what());
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "' for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& text, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot open '" + path + "' for writing");
  out << text;
  if (!out.flush()) throw Error("cannot write '" + path + "'");
}

void check_format(const json& j, const char* expected, const char* what) {
  if (!j.is_object()) throw Error(std::string(what) + ": top level must be a JSON object");
  auto it = j.find("format");
  if (it == j.end()) {
    throw Error(std::string(what) + ": missing required field \"format\" (expected \"" + expected +
                "\")");
  }
  if (!it->is_string() || it->get<std::string>() != expected) {
    throw Error(std::string(what) + ": wrong format " + it->dump() + ", expected \"" + expected +
                "\"");
  }
}

}  // namespace

void validate_problem(const Problem& p) {
  const int n = p.size();
  int64_t total_bytes = 0;
  double total_cost = 0;
  for (int i = 0; i < n; ++i) {
    const Node& v = p.nodes[i];
    if (v.id != i) {
      throw Error(where_node(i) + " has id " + std::to_string(v.id) +
                  ": ids must be 0..n-1 in the order nodes are listed");
    }
    const std::string who = "node " + std::to_string(i);
    if (v.bytes < 0)
      throw Error(who + ": bytes must be non-negative, got " + std::to_string(v.bytes));
    if (!std::isfinite(v.cost) || v.cost < 0) {
      std::ostringstream ss;
      ss << who << ": cost must be finite and non-negative, got " << v.cost;
      throw Error(ss.str());
    }
    // Every byte and cost sum of the scheduler (peaks, floors, budgets, plan costs) is a sum over a
    // subset of the nodes, so bounding the totals here makes every one of them exact.
    if (v.bytes > kMaxGraphBytes - total_bytes)
      throw Error(who + ": its " + std::to_string(v.bytes) + " bytes take the graph's total past " +
                  std::to_string(kMaxGraphBytes) +
                  " bytes (2^62), more than any sum of the scheduler can hold");
    total_bytes += v.bytes;
    total_cost += v.cost;
    if (!std::isfinite(total_cost) || total_cost > kMaxGraphCost) {
      std::ostringstream ss;
      ss << who << ": its cost " << v.cost << " takes the graph's total cost past " << kMaxGraphCost
         << "; costs are seconds (or any consistent unit): rescale them";
      throw Error(ss.str());
    }
    for (NodeId u : v.inputs) {
      if (u < 0 || u >= n) {
        throw Error(who + ": input " + std::to_string(u) + " does not exist (ids are 0.." +
                    std::to_string(n - 1) + ")");
      }
      if (u >= v.id) {
        throw Error(who + ": input " + std::to_string(u) +
                    " is not smaller than the node's id (nodes must be in topological order)");
      }
    }
  }
  for (NodeId o : p.outputs) {
    if (o < 0 || o >= n) {
      throw Error("output " + std::to_string(o) + " does not exist (ids are 0.." +
                  std::to_string(n - 1) + ")");
    }
  }
}

Problem problem_from_json(const json& j) {
  check_format(j, kGraphFormat, "graph");
  Problem p;
  p.name = opt_string(j, "name", "graph");
  const json& nodes = require(j, "nodes", "graph");
  if (!nodes.is_array()) throw Error("graph: field \"nodes\" must be an array");
  p.nodes.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const json& jn = nodes[i];
    std::string where = where_node(i);
    if (!jn.is_object()) throw Error(where + ": must be a JSON object");
    Node v;
    // Compared before narrowing to NodeId: an id of 2^62 must not read as 0.
    const int64_t id = as_int(require(jn, "id", where), where, "id");
    if (id != static_cast<int64_t>(i)) {
      throw Error(where + " has id " + std::to_string(id) +
                  ": ids must be 0..n-1 in the order nodes are listed");
    }
    v.id = static_cast<NodeId>(id);
    where = "node " + std::to_string(i);
    v.name = opt_string(jn, "name", where);
    v.op = opt_string(jn, "op", where);
    v.bytes = as_int(require(jn, "bytes", where), where, "bytes");
    v.cost = as_double(require(jn, "cost", where), where, "cost");
    const json& ins = require(jn, "inputs", where);
    if (!ins.is_array()) throw Error(where + ": field \"inputs\" must be an array");
    for (const json& u : ins) {
      const int64_t in = as_int(u, where, "inputs");
      if (in < 0 || in >= static_cast<int64_t>(i))
        throw Error(
            where + ": input " + std::to_string(in) +
            (in < 0 || in >= static_cast<int64_t>(nodes.size())
                 ? " does not exist (ids are 0.." + std::to_string(nodes.size() - 1) + ")"
                 : " is not smaller than the node's id (nodes must be in topological order)"));
      v.inputs.push_back(static_cast<NodeId>(in));
    }
    if (auto it = jn.find("resident"); it != jn.end() && !it->is_null()) {
      if (!it->is_boolean()) throw Error(where + ": field \"resident\" must be true or false");
      v.resident = it->get<bool>();
    }
    p.nodes.push_back(std::move(v));
  }
  const json& outs = require(j, "outputs", "graph");
  if (!outs.is_array()) throw Error("graph: field \"outputs\" must be an array");
  for (const json& o : outs)
    p.outputs.push_back(static_cast<NodeId>(as_int(o, "graph", "outputs")));
  // A step that keeps nothing needs nothing computed: every plan of it is empty, and its overhead
  // (0 / cost) would say nothing. A training step keeps at least its loss or its updates.
  if (p.outputs.empty() && !p.nodes.empty())
    throw Error(
        "graph: field \"outputs\" is empty; name the values the step must produce (the loss, the "
        "updated parameters): a graph that keeps nothing has nothing to plan");
  if (auto it = j.find("bandwidth"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      throw Error("graph: field \"bandwidth\" must be an object {\"out\": B, \"in\": B} (bytes/s)");
    for (const char* dir : {"out", "in"}) {
      auto b = it->find(dir);
      if (b == it->end()) continue;
      const double v = as_double(*b, "graph bandwidth", dir);
      if (!std::isfinite(v) || v <= 0)
        throw Error(std::string("graph: bandwidth \"") + dir + "\" must be positive bytes/s, got " +
                    b->dump());
      (std::string(dir) == "out" ? p.bandwidth.out : p.bandwidth.in) = v;
    }
  }
  validate_problem(p);
  return p;
}

Problem read_problem_json(const std::string& text) {
  return problem_from_json(parse_text(text, "graph"));
}

Problem read_problem_file(const std::string& path) {
  try {
    return read_problem_json(read_text(path));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

json problem_to_json(const Problem& p) {
  json nodes = json::array();
  for (const Node& v : p.nodes) {
    json jn = {{"id", v.id},       {"name", v.name}, {"op", v.op},
               {"bytes", v.bytes}, {"cost", v.cost}, {"inputs", v.inputs}};
    if (v.resident) jn["resident"] = true;
    nodes.push_back(std::move(jn));
  }
  json j{{"format", kGraphFormat},
         {"name", p.name},
         {"nodes", std::move(nodes)},
         {"outputs", p.outputs}};
  if (p.bandwidth.out > 0 || p.bandwidth.in > 0) {
    j["bandwidth"] = json::object();
    if (p.bandwidth.out > 0) j["bandwidth"]["out"] = p.bandwidth.out;
    if (p.bandwidth.in > 0) j["bandwidth"]["in"] = p.bandwidth.in;
  }
  return j;
}

// nlohmann's dump() puts every array element on its own line; graphs of 10k nodes read better (and
// diff better) with one node per line.
std::string problem_to_string(const Problem& p) {
  json j = problem_to_json(p);
  std::string s = "{\n  \"format\": " + j["format"].dump() + ",\n  \"name\": " + j["name"].dump() +
                  ",\n  \"nodes\": [\n";
  const json& nodes = j["nodes"];
  for (size_t i = 0; i < nodes.size(); ++i) {
    s += "    " + nodes[i].dump() + (i + 1 < nodes.size() ? ",\n" : "\n");
  }
  s += "  ],\n  \"outputs\": " + j["outputs"].dump() + "\n}\n";
  return s;
}

void write_problem_file(const Problem& p, const std::string& path) {
  write_text(problem_to_string(p), path);
}

Plan plan_from_json(const json& j, bool check_waits) {
  check_format(j, kPlanFormat, "plan");
  Plan plan;
  plan.graph = opt_string(j, "graph", "plan");
  plan.planner = opt_string(j, "planner", "plan");
  plan.budget_bytes = as_int(require(j, "budget_bytes", "plan"), "plan", "budget_bytes");
  const json& steps = require(j, "steps", "plan");
  if (!steps.is_array()) throw Error("plan: field \"steps\" must be an array");
  plan.steps.reserve(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& js = steps[i];
    const std::string where = "plan step " + std::to_string(i);
    if (!js.is_object()) throw Error(where + ": must be a JSON object");
    // Exactly one kind key: "compute" or "free" (the spec), or a copy to the second tier
    // ("offload", "fetch", "drop"; docs/plan-format.md).
    static constexpr Step::Kind kKinds[] = {Step::Kind::compute, Step::Kind::free,
                                            Step::Kind::offload, Step::Kind::fetch,
                                            Step::Kind::drop};
    const json* node = nullptr;
    Step::Kind kind = Step::Kind::compute;
    std::string found;
    for (Step::Kind k : kKinds) {
      auto it = js.find(kind_name(k));
      if (it == js.end()) continue;
      if (node) {
        std::string msg = where;
        msg += ": must have exactly one of \"compute\", \"free\", \"offload\", \"fetch\" or ";
        msg += "\"drop\", got both \"" + found + "\" and \"" + kind_name(k) + "\"";
        throw Error(msg);
      }
      node = &*it;
      kind = k;
      found = kind_name(k);
    }
    if (!node) {
      throw Error(where +
                  ": must have exactly one of \"compute\" or \"free\" (or a copy: \"offload\", "
                  "\"fetch\", \"drop\")");
    }
    Step s0;
    s0.kind = kind;
    s0.node = static_cast<NodeId>(as_int(*node, where, found.c_str()));
    plan.steps.push_back(std::move(s0));
    Step& step = plan.steps.back();
    if (auto st = js.find("stream"); st != js.end()) {
      const int64_t v = as_int(*st, where, "stream");
      if (v < INT_MIN || v > INT_MAX)
        throw Error(where + ": field \"stream\" is out of range, got " + st->dump());
      step.stream = static_cast<int>(v);
    }
    if (auto af = js.find("after"); af != js.end()) {
      if (!af->is_array())
        throw Error(where + ": field \"after\" must be an array of step indices");
      step.after.reserve(af->size());
      for (const json& a : *af) step.after.push_back(as_int(a, where, "after"));
    }
  }
  if (auto it = j.find("streams"); it != j.end()) {
    const int64_t v = as_int(*it, "plan", "streams");
    if (v < 1 || v > INT_MAX)
      throw Error("plan: field \"streams\" must be at least 1, got " + it->dump());
    plan.streams = static_cast<int>(v);
  }
  if (auto it = j.find("host_budget_bytes"); it != j.end() && !it->is_null()) {
    const int64_t v = as_int(*it, "plan", "host_budget_bytes");
    if (v < 0)
      throw Error("plan: field \"host_budget_bytes\" must be non-negative, got " + it->dump());
    plan.host_budget_bytes = v;
  }
  if (check_waits) {
    if (const StructureError e = stream_structure_error(plan); !e.message.empty())
      throw Error("plan " + e.message);
  }
  if (auto it = j.find("predicted"); it != j.end() && it->is_object()) {
    if (auto pk = it->find("peak_bytes"); pk != it->end()) {
      plan.predicted_peak_bytes = as_int(*pk, "plan predicted", "peak_bytes");
    }
    if (auto pc = it->find("cost"); pc != it->end())
      plan.predicted_cost = as_double(*pc, "plan predicted", "cost");
  }
  return plan;
}

Plan read_plan_json(const std::string& text, bool check_waits) {
  return plan_from_json(parse_text(text, "plan"), check_waits);
}

Plan read_plan_file(const std::string& path, bool check_waits) {
  try {
    return read_plan_json(read_text(path), check_waits);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

json plan_to_json(const Plan& plan) {
  json steps = json::array();
  for (const Step& s : plan.steps) {
    json js{{kind_name(s.kind), s.node}};
    // Serial steps keep the spec's form: stream 0 and no waits are not written.
    if (s.stream != 0) js["stream"] = s.stream;
    if (!s.after.empty()) js["after"] = s.after;
    steps.push_back(std::move(js));
  }
  json j{{"format", kPlanFormat},
         {"graph", plan.graph},
         {"planner", plan.planner},
         {"budget_bytes", plan.budget_bytes},
         {"steps", std::move(steps)},
         {"predicted", {{"peak_bytes", plan.predicted_peak_bytes}, {"cost", plan.predicted_cost}}}};
  if (plan.streams > 0) j["streams"] = plan.streams;
  if (plan.host_budget_bytes >= 0) j["host_budget_bytes"] = plan.host_budget_bytes;
  return j;
}

std::string plan_to_string(const Plan& plan) {
  json j = plan_to_json(plan);
  std::string s = "{\n  \"format\": " + j["format"].dump() +
                  ",\n  \"graph\": " + j["graph"].dump() +
                  ",\n  \"planner\": " + j["planner"].dump() +
                  ",\n  \"budget_bytes\": " + j["budget_bytes"].dump() + ",";
  if (plan.streams > 0) s += "\n  \"streams\": " + std::to_string(plan.streams) + ",";
  if (plan.host_budget_bytes >= 0)
    s += "\n  \"host_budget_bytes\": " + std::to_string(plan.host_budget_bytes) + ",";
  s += "\n  \"steps\": [";
  // Written by hand rather than by dump(), which sorts keys: the node first, then stream and waits.
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& st = plan.steps[i];
    std::string one = std::string("{\"") + kind_name(st.kind) + "\":" + std::to_string(st.node);
    if (st.stream != 0) one += ",\"stream\":" + std::to_string(st.stream);
    if (!st.after.empty()) {
      one += ",\"after\":[";
      for (size_t k = 0; k < st.after.size(); ++k)
        one += (k ? "," : "") + std::to_string(st.after[k]);
      one += "]";
    }
    one += "}";
    s += (i % 8 == 0 ? "\n    " : " ") + one + (i + 1 < plan.steps.size() ? "," : "");
  }
  s += "\n  ],\n  \"predicted\": " + j["predicted"].dump() + "\n}\n";
  return s;
}

void write_plan_file(const Plan& plan, const std::string& path) {
  write_text(plan_to_string(plan), path);
}

}  // namespace lethe::sched
