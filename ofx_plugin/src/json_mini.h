// A tiny JSON reader for the bundle's parameter schema (Resources/faceplate_schema.json).
// Supports what the schema uses: objects, arrays, strings (with \uXXXX escapes, surrogate pairs
// encoded as UTF-8), numbers, true/false/null. Throws std::runtime_error with the byte offset on
// malformed input. Not a general-purpose parser (no duplicate-key policy, no depth limit beyond
// the schema's own nesting).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace faceplate::json {

struct Value {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0.0;
  std::string str;
  std::vector<Value> arr;
  std::vector<std::pair<std::string, Value>> obj;  // in file order

  bool is_null() const { return kind == Null; }
  // Member lookup; returns a static null value when absent or when this is not an object.
  const Value& operator[](const std::string& key) const;
  std::string as_string(const std::string& dflt = "") const { return kind == String ? str : dflt; }
  double as_number(double dflt = 0.0) const {
    return kind == Number ? num : kind == Bool ? (b ? 1.0 : 0.0) : dflt;
  }
};

// Parses a whole document (trailing whitespace allowed).
Value parse(const std::string& text);

}  // namespace faceplate::json
