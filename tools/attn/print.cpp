// tools/attn/print.cpp — see print.hpp.
#include "print.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace attn::cli {

std::string num(double v, int decimals) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string pad(const std::string& s, int width) {
  const int n = static_cast<int>(s.size());
  return n >= width ? s : std::string(static_cast<size_t>(width - n), ' ') + s;
}

static std::string pad_right(const std::string& s, int width) {
  const int n = static_cast<int>(s.size());
  return n >= width ? s : s + std::string(static_cast<size_t>(width - n), ' ');
}

void print_row(std::ostream& os, const std::string& label, int label_width, const std::vector<double>& values,
               int width, int decimals) {
  os << pad_right(label, label_width);
  for (double v : values) os << pad(num(v, decimals), width);
  os << "\n";
}

void print_header(std::ostream& os, const std::string& label, int label_width, const std::vector<std::string>& cols,
                  int width) {
  os << pad_right(label, label_width);
  for (const auto& c : cols) os << pad(c, width);
  os << "\n";
}

void print_matrix(std::ostream& os, const Tensor<float>& m, const std::vector<std::string>& row_labels,
                  const std::vector<std::string>& col_labels, int label_width, int width) {
  print_header(os, "", label_width, col_labels, width);
  for (int64_t i = 0; i < m.size(0); ++i) {
    const std::string label = i < static_cast<int64_t>(row_labels.size()) ? row_labels[static_cast<size_t>(i)] : "";
    print_row(os, label, label_width, values_of(m.select(0, i)), width);
  }
}

std::vector<double> values_of(const Tensor<float>& t) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.flat(i));
  return out;
}

nlohmann::ordered_json json_number(float v) {
  if (!std::isfinite(v)) return nullptr;
  // Shortest decimal that reads back as this float, then that decimal as a
  // double: nlohmann prints doubles shortest-round-trip, so the JSON shows
  // exactly the digits the float carries.
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

static nlohmann::ordered_json to_json_from(const Tensor<float>& t) {
  if (t.dim() == 0) return json_number(t.flat(0));
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (int64_t i = 0; i < t.size(0); ++i) arr.push_back(to_json_from(t.select(0, i)));
  return arr;
}

nlohmann::ordered_json to_json(const Tensor<float>& t) { return to_json_from(t); }

static void pretty_into(std::string& out, const nlohmann::ordered_json& j, int indent, int depth) {
  if (!j.is_structured()) {
    out += dump_json(j);
    return;
  }
  const bool obj = j.is_object();
  const bool flat = std::none_of(j.begin(), j.end(), [](const auto& e) { return e.is_structured(); });
  // Only primitives inside: one line, "[0.1, 0.2]" or {"a": 1, "b": 2}.
  // Otherwise one element per line, indented.
  const std::string sep = flat ? ", " : ",\n";
  const size_t pad_in = flat ? 0 : static_cast<size_t>(indent * (depth + 1));
  out += obj ? "{" : "[";
  if (!flat) out += '\n';
  size_t i = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++i) {
    if (i) out += sep;
    out.append(pad_in, ' ');
    if (obj) {
      out += dump_json(nlohmann::ordered_json(it.key()));
      out += ": ";
    }
    pretty_into(out, *it, indent, depth + 1);
  }
  if (!flat) {
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
  }
  out += obj ? "}" : "]";
}

std::string pretty_json(const nlohmann::ordered_json& j, int indent) {
  std::string out;
  pretty_into(out, j, indent, 0);
  return out;
}

}  // namespace attn::cli
