// faceplate-ofx-testhost: a small OpenFX image-effect host used only by the tests.
//
//   faceplate-ofx-testhost describe BUNDLE
//   faceplate-ofx-testhost render BUNDLE --plugin ID [--context filter|general] --input IN.f32
//       [--output OUT.f32] [--depth byte|short|float] [--components RGBA|RGB]
//       [--rowbytes positive|negative] [--render-scale S] [--param name=value]... [--threads N]
//       [--frames a-b] [--abort-after K] [--mask MASK.f32] [--instance-changed NAME]...
//       [--cancel-progress-after K] [--window x1,y1,x2,y2]
//   faceplate-ofx-testhost selftest        (host-side checks of the property and param suites)
//
// Image files are ".f32": a 20-byte header (8 bytes "FPF32\0\0\0", uint32 LE width, height,
// channels) then top-down float32 rows (pixels interleaved), values in the depth's native
// units (byte 0..255, short 0..65535, float as is). JSON goes to stdout. Exit codes: 0 all frames
// rendered (or identity), 1 usage, 2 load/describe failure, 3 a frame failed, 4 a frame aborted.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "faceplate/ofx_abi.h"

using namespace faceplate::ofx;

// ============================================================================ property sets
enum class PType { Pointer, String, Double, Int };

struct PropValue {
  PType type = PType::Int;
  std::vector<void*> p;
  std::vector<std::string> s;
  std::vector<double> d;
  std::vector<int> i;
  size_t size() const {
    switch (type) {
      case PType::Pointer: return p.size();
      case PType::String: return s.size();
      case PType::Double: return d.size();
      default: return i.size();
    }
  }
  void resize(size_t n) {
    switch (type) {
      case PType::Pointer: p.resize(n, nullptr); break;
      case PType::String: s.resize(n); break;
      case PType::Double: d.resize(n, 0.0); break;
      default: i.resize(n, 0); break;
    }
  }
};

struct PropEntry {
  PropValue value;
  PropValue initial;  // what propReset restores
};

struct OfxPropertySetStruct {
  std::string kind;   // for diagnostics
  bool open = true;   // open sets create properties on set; closed ones refuse unknown names
  std::map<std::string, PropEntry> props;
  std::recursive_mutex mutex;

  // Host-side helpers (define or overwrite, also setting the reset value).
  void defInt(const std::string& n, std::vector<int> v) {
    PropEntry e; e.value.type = PType::Int; e.value.i = std::move(v); e.initial = e.value;
    props[n] = e;
  }
  void defDouble(const std::string& n, std::vector<double> v) {
    PropEntry e; e.value.type = PType::Double; e.value.d = std::move(v); e.initial = e.value;
    props[n] = e;
  }
  void defString(const std::string& n, std::vector<std::string> v) {
    PropEntry e; e.value.type = PType::String; e.value.s = std::move(v); e.initial = e.value;
    props[n] = e;
  }
  void defPointer(const std::string& n, std::vector<void*> v) {
    PropEntry e; e.value.type = PType::Pointer; e.value.p = std::move(v); e.initial = e.value;
    props[n] = e;
  }
  const PropValue* find(const std::string& n) const {
    auto it = props.find(n);
    return it == props.end() ? nullptr : &it->second.value;
  }
  int getInt(const std::string& n, int dflt = 0, size_t idx = 0) const {
    auto* v = find(n);
    return (v && v->type == PType::Int && idx < v->i.size()) ? v->i[idx] : dflt;
  }
  double getDouble(const std::string& n, double dflt = 0, size_t idx = 0) const {
    auto* v = find(n);
    return (v && v->type == PType::Double && idx < v->d.size()) ? v->d[idx] : dflt;
  }
  std::string getString(const std::string& n, const std::string& dflt = "", size_t idx = 0) const {
    auto* v = find(n);
    return (v && v->type == PType::String && idx < v->s.size()) ? v->s[idx] : dflt;
  }
  std::vector<std::string> getStrings(const std::string& n) const {
    auto* v = find(n);
    return (v && v->type == PType::String) ? v->s : std::vector<std::string>{};
  }
};

namespace {
using PS = OfxPropertySetStruct;

template <typename F>
OfxStatus withProp(OfxPropertySetHandle h, const char* name, PType type, bool create, F&& f) {
  if (!h || !name) return kOfxStatErrBadHandle;
  std::lock_guard<std::recursive_mutex> lock(h->mutex);
  auto it = h->props.find(name);
  if (it == h->props.end()) {
    if (!create || !h->open) return kOfxStatErrUnknown;
    PropEntry e; e.value.type = type; e.initial.type = type;
    it = h->props.emplace(name, e).first;
  }
  if (it->second.value.type != type) return kOfxStatErrValue;
  return f(it->second.value);
}

template <typename T>
std::vector<T>& slot(PropValue& v);
template <> std::vector<void*>& slot<void*>(PropValue& v) { return v.p; }
template <> std::vector<std::string>& slot<std::string>(PropValue& v) { return v.s; }
template <> std::vector<double>& slot<double>(PropValue& v) { return v.d; }
template <> std::vector<int>& slot<int>(PropValue& v) { return v.i; }

template <typename T, typename In>
OfxStatus setOne(OfxPropertySetHandle h, const char* name, PType type, int index, In value) {
  return withProp(h, name, type, true, [&](PropValue& v) {
    auto& vec = slot<T>(v);
    if (index < 0 || static_cast<size_t>(index) > vec.size()) return kOfxStatErrBadIndex;
    if (static_cast<size_t>(index) == vec.size()) vec.resize(index + 1);
    vec[index] = T(value);
    return kOfxStatOK;
  });
}
template <typename T, typename In>
OfxStatus setN(OfxPropertySetHandle h, const char* name, PType type, int count, const In* values) {
  if (count <= 0 || !values) return kOfxStatErrBadIndex;
  return withProp(h, name, type, true, [&](PropValue& v) {
    auto& vec = slot<T>(v);
    vec.assign(values, values + count);
    return kOfxStatOK;
  });
}
template <typename T, typename Out, typename Conv>
OfxStatus getOne(OfxPropertySetHandle h, const char* name, PType type, int index, Out* out,
                 Conv conv) {
  if (!out) return kOfxStatErrBadHandle;
  return withProp(h, name, type, false, [&](PropValue& v) {
    auto& vec = slot<T>(v);
    if (index < 0 || static_cast<size_t>(index) >= vec.size()) return kOfxStatErrBadIndex;
    *out = conv(vec[index]);
    return kOfxStatOK;
  });
}
template <typename T, typename Out, typename Conv>
OfxStatus getN(OfxPropertySetHandle h, const char* name, PType type, int count, Out* out,
               Conv conv) {
  if (!out) return kOfxStatErrBadHandle;
  return withProp(h, name, type, false, [&](PropValue& v) {
    auto& vec = slot<T>(v);
    if (count < 0 || static_cast<size_t>(count) > vec.size()) return kOfxStatErrBadIndex;
    for (int k = 0; k < count; ++k) out[k] = conv(vec[k]);
    return kOfxStatOK;
  });
}
auto ident = [](auto x) { return x; };
auto cstr = [](std::string& s) { return const_cast<char*>(s.c_str()); };

OfxStatus propSetPointer(OfxPropertySetHandle h, const char* n, int i, void* v) {
  return setOne<void*>(h, n, PType::Pointer, i, v);
}
OfxStatus propSetString(OfxPropertySetHandle h, const char* n, int i, const char* v) {
  return v ? setOne<std::string>(h, n, PType::String, i, v) : kOfxStatErrValue;
}
OfxStatus propSetDouble(OfxPropertySetHandle h, const char* n, int i, double v) {
  return setOne<double>(h, n, PType::Double, i, v);
}
OfxStatus propSetInt(OfxPropertySetHandle h, const char* n, int i, int v) {
  return setOne<int>(h, n, PType::Int, i, v);
}
OfxStatus propSetPointerN(OfxPropertySetHandle h, const char* n, int c, void* const* v) {
  return setN<void*>(h, n, PType::Pointer, c, v);
}
OfxStatus propSetStringN(OfxPropertySetHandle h, const char* n, int c, const char* const* v) {
  if (v) for (int k = 0; k < c; ++k) if (!v[k]) return kOfxStatErrValue;
  return setN<std::string>(h, n, PType::String, c, v);
}
OfxStatus propSetDoubleN(OfxPropertySetHandle h, const char* n, int c, const double* v) {
  return setN<double>(h, n, PType::Double, c, v);
}
OfxStatus propSetIntN(OfxPropertySetHandle h, const char* n, int c, const int* v) {
  return setN<int>(h, n, PType::Int, c, v);
}
OfxStatus propGetPointer(OfxPropertySetHandle h, const char* n, int i, void** v) {
  return getOne<void*>(h, n, PType::Pointer, i, v, ident);
}
OfxStatus propGetString(OfxPropertySetHandle h, const char* n, int i, char** v) {
  return getOne<std::string>(h, n, PType::String, i, v, cstr);
}
OfxStatus propGetDouble(OfxPropertySetHandle h, const char* n, int i, double* v) {
  return getOne<double>(h, n, PType::Double, i, v, ident);
}
OfxStatus propGetInt(OfxPropertySetHandle h, const char* n, int i, int* v) {
  return getOne<int>(h, n, PType::Int, i, v, ident);
}
OfxStatus propGetPointerN(OfxPropertySetHandle h, const char* n, int c, void** v) {
  return getN<void*>(h, n, PType::Pointer, c, v, ident);
}
OfxStatus propGetStringN(OfxPropertySetHandle h, const char* n, int c, char** v) {
  return getN<std::string>(h, n, PType::String, c, v, cstr);
}
OfxStatus propGetDoubleN(OfxPropertySetHandle h, const char* n, int c, double* v) {
  return getN<double>(h, n, PType::Double, c, v, ident);
}
OfxStatus propGetIntN(OfxPropertySetHandle h, const char* n, int c, int* v) {
  return getN<int>(h, n, PType::Int, c, v, ident);
}
OfxStatus propReset(OfxPropertySetHandle h, const char* n) {
  if (!h || !n) return kOfxStatErrBadHandle;
  std::lock_guard<std::recursive_mutex> lock(h->mutex);
  auto it = h->props.find(n);
  if (it == h->props.end()) return kOfxStatErrUnknown;
  it->second.value = it->second.initial;
  return kOfxStatOK;
}
OfxStatus propGetDimension(OfxPropertySetHandle h, const char* n, int* count) {
  if (!h || !n || !count) return kOfxStatErrBadHandle;
  std::lock_guard<std::recursive_mutex> lock(h->mutex);
  auto it = h->props.find(n);
  if (it == h->props.end()) return kOfxStatErrUnknown;
  *count = static_cast<int>(it->second.value.size());
  return kOfxStatOK;
}

const OfxPropertySuiteV1 gPropertySuite = {
    propSetPointer, propSetString, propSetDouble, propSetInt, propSetPointerN, propSetStringN,
    propSetDoubleN, propSetIntN, propGetPointer, propGetString, propGetDouble, propGetInt,
    propGetPointerN, propGetStringN, propGetDoubleN, propGetIntN, propReset, propGetDimension};
}  // namespace

// ============================================================================ JSON output
namespace {
std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += static_cast<char>(c);
    }
  }
  return o + "\"";
}
std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
std::string jvalue(const PropValue& v, bool forceArray = false) {
  std::vector<std::string> items;
  for (size_t k = 0; k < v.size(); ++k) {
    switch (v.type) {
      case PType::Pointer: items.push_back(v.p[k] ? "\"<pointer>\"" : "null"); break;
      case PType::String: items.push_back(jstr(v.s[k])); break;
      case PType::Double: items.push_back(jnum(v.d[k])); break;
      default: items.push_back(std::to_string(v.i[k])); break;
    }
  }
  if (items.size() == 1 && !forceArray) return items[0];
  std::string o = "[";
  for (size_t k = 0; k < items.size(); ++k) o += (k ? "," : "") + items[k];
  return o + "]";
}
std::string jprops(const PS& ps) {
  std::string o = "{";
  bool first = true;
  for (auto& kv : ps.props) {
    if (kv.second.value.type == PType::Pointer) continue;
    o += (first ? "" : ",") + jstr(kv.first) + ":" + jvalue(kv.second.value);
    first = false;
  }
  return o + "}";
}
}  // namespace

// ============================================================================ params
struct OfxParamStruct {
  std::string name, type;
  PS props;
  std::vector<double> value;  // numeric params (ints stored exactly in doubles)
  std::string str;            // string-like params
  std::map<double, std::vector<double>> keys;
  std::mutex mutex;
};

struct OfxParamSetStruct {
  PS props;
  std::vector<std::unique_ptr<OfxParamStruct>> params;
  std::atomic<int> editDepth{0};
  OfxParamStruct* find(const std::string& n) {
    for (auto& p : params) if (p->name == n) return p.get();
    return nullptr;
  }
};

namespace {
enum class VKind { None, Int, Double, String };
struct ParamShape { VKind kind; int dim; };
ParamShape shapeOf(const std::string& t) {
  if (t == kOfxParamTypeInteger || t == kOfxParamTypeBoolean || t == kOfxParamTypeChoice)
    return {VKind::Int, 1};
  if (t == kOfxParamTypeDouble) return {VKind::Double, 1};
  if (t == kOfxParamTypeDouble2D) return {VKind::Double, 2};
  if (t == kOfxParamTypeInteger2D) return {VKind::Int, 2};
  if (t == kOfxParamTypeDouble3D) return {VKind::Double, 3};
  if (t == kOfxParamTypeInteger3D) return {VKind::Int, 3};
  if (t == kOfxParamTypeRGB) return {VKind::Double, 3};
  if (t == kOfxParamTypeRGBA) return {VKind::Double, 4};
  if (t == kOfxParamTypeString || t == kOfxParamTypeCustom || t == kOfxParamTypeStrChoice)
    return {VKind::String, 1};
  return {VKind::None, 0};
}
bool knownParamType(const std::string& t) {
  return shapeOf(t).kind != VKind::None || t == kOfxParamTypeGroup ||
         t == kOfxParamTypePage || t == kOfxParamTypePushButton;
}

OfxStatus paramDefine(OfxParamSetHandle set, const char* type, const char* name,
                      OfxPropertySetHandle* props) {
  if (!set || !type || !name) return kOfxStatErrBadHandle;
  if (!knownParamType(type)) return kOfxStatErrUnknown;
  if (set->find(name)) return kOfxStatErrExists;
  auto p = std::make_unique<OfxParamStruct>();
  p->name = name; p->type = type; p->props.kind = "param";
  p->props.defString(kOfxParamPropType, {type});
  p->props.defString(kOfxPropName, {name});
  p->props.defString(kOfxPropLabel, {name});
  p->props.defString(kOfxParamPropHint, {""});
  p->props.defString(kOfxParamPropScriptName, {name});
  p->props.defString(kOfxParamPropParent, {""});
  p->props.defInt(kOfxParamPropSecret, {0});
  p->props.defInt(kOfxParamPropEnabled, {1});
  p->props.defInt(kOfxParamPropEvaluateOnChange, {1});
  ParamShape sh = shapeOf(type);
  if (sh.kind == VKind::Int) p->props.defInt(kOfxParamPropDefault, std::vector<int>(sh.dim, 0));
  if (sh.kind == VKind::Double)
    p->props.defDouble(kOfxParamPropDefault, std::vector<double>(sh.dim, 0.0));
  if (sh.kind == VKind::String) p->props.defString(kOfxParamPropDefault, {""});
  if (sh.kind != VKind::None) p->props.defInt(kOfxParamPropAnimates, {1});
  if (std::string(type) == kOfxParamTypeChoice) p->props.defString(kOfxParamPropChoiceOption, {});
  if (std::string(type) == kOfxParamTypePage) p->props.defString(kOfxParamPropPageChild, {});
  if (props) *props = &p->props;
  set->params.push_back(std::move(p));
  return kOfxStatOK;
}
OfxStatus paramGetHandle(OfxParamSetHandle set, const char* name, OfxParamHandle* param,
                         OfxPropertySetHandle* props) {
  if (!set || !name || !param) return kOfxStatErrBadHandle;
  OfxParamStruct* p = set->find(name);
  if (!p) return kOfxStatErrUnknown;
  *param = p;
  if (props) *props = &p->props;
  return kOfxStatOK;
}
OfxStatus paramSetGetPropertySet(OfxParamSetHandle set, OfxPropertySetHandle* props) {
  if (!set || !props) return kOfxStatErrBadHandle;
  *props = &set->props;
  return kOfxStatOK;
}
OfxStatus paramGetPropertySet(OfxParamHandle p, OfxPropertySetHandle* props) {
  if (!p || !props) return kOfxStatErrBadHandle;
  *props = &p->props;
  return kOfxStatOK;
}

// The value at a time: static value without keys; else the key at or before t (step), the first
// key before the first one. Linear interpolation between keys for double params.
std::vector<double> valueAt(OfxParamStruct* p, double t) {
  if (p->keys.empty()) return p->value;
  auto hi = p->keys.lower_bound(t);
  if (hi != p->keys.end() && hi->first == t) return hi->second;
  if (hi == p->keys.begin()) return hi->second;
  if (hi == p->keys.end()) return std::prev(hi)->second;
  auto lo = std::prev(hi);
  if (shapeOf(p->type).kind != VKind::Double) return lo->second;
  double a = (t - lo->first) / (hi->first - lo->first);
  std::vector<double> out(lo->second.size());
  for (size_t k = 0; k < out.size(); ++k) out[k] = lo->second[k] * (1 - a) + hi->second[k] * a;
  return out;
}

OfxStatus vget(OfxParamHandle p, bool atTime, double t, va_list ap) {
  if (!p) return kOfxStatErrBadHandle;
  ParamShape sh = shapeOf(p->type);
  std::lock_guard<std::mutex> lock(p->mutex);
  if (sh.kind == VKind::None) return kOfxStatErrUnsupported;
  if (sh.kind == VKind::String) {
    char** out = va_arg(ap, char**);
    if (!out) return kOfxStatErrBadHandle;
    *out = const_cast<char*>(p->str.c_str());
    return kOfxStatOK;
  }
  std::vector<double> v = atTime ? valueAt(p, t) : valueAt(p, 0.0);
  if (!atTime && p->keys.empty()) v = p->value;
  for (int k = 0; k < sh.dim; ++k) {
    if (sh.kind == VKind::Int) {
      int* out = va_arg(ap, int*);
      if (!out) return kOfxStatErrBadHandle;
      *out = static_cast<int>(std::lround(v[k]));
    } else {
      double* out = va_arg(ap, double*);
      if (!out) return kOfxStatErrBadHandle;
      *out = v[k];
    }
  }
  return kOfxStatOK;
}
OfxStatus vset(OfxParamHandle p, bool atTime, double t, va_list ap) {
  if (!p) return kOfxStatErrBadHandle;
  ParamShape sh = shapeOf(p->type);
  std::lock_guard<std::mutex> lock(p->mutex);
  if (sh.kind == VKind::None) return kOfxStatErrUnsupported;
  if (sh.kind == VKind::String) {
    const char* s = va_arg(ap, const char*);
    if (!s) return kOfxStatErrValue;
    p->str = s;
    return kOfxStatOK;
  }
  std::vector<double> v(sh.dim);
  for (int k = 0; k < sh.dim; ++k)
    v[k] = sh.kind == VKind::Int ? static_cast<double>(va_arg(ap, int)) : va_arg(ap, double);
  if (atTime) p->keys[t] = v;
  else if (p->keys.empty()) p->value = v;
  else return kOfxStatErrValue;  // animated param: set at a time instead
  return kOfxStatOK;
}
OfxStatus paramGetValue(OfxParamHandle p, ...) {
  va_list ap; va_start(ap, p); OfxStatus st = vget(p, false, 0, ap); va_end(ap); return st;
}
OfxStatus paramGetValueAtTime(OfxParamHandle p, OfxTime t, ...) {
  va_list ap; va_start(ap, t); OfxStatus st = vget(p, true, t, ap); va_end(ap); return st;
}
OfxStatus paramGetDerivative(OfxParamHandle p, OfxTime t, ...) {
  if (!p) return kOfxStatErrBadHandle;
  ParamShape sh = shapeOf(p->type);
  if (sh.kind != VKind::Double) return kOfxStatErrUnsupported;
  va_list ap; va_start(ap, t);
  for (int k = 0; k < sh.dim; ++k) { double* o = va_arg(ap, double*); if (o) *o = 0.0; }
  va_end(ap);
  return kOfxStatOK;  // step/linear keys: reported as flat (documented limitation)
}
OfxStatus paramGetIntegral(OfxParamHandle p, OfxTime t1, OfxTime t2, ...) {
  if (!p) return kOfxStatErrBadHandle;
  ParamShape sh = shapeOf(p->type);
  if (sh.kind != VKind::Double) return kOfxStatErrUnsupported;
  std::vector<double> v;
  { std::lock_guard<std::mutex> lock(p->mutex); v = valueAt(p, t1); }
  va_list ap; va_start(ap, t2);
  for (int k = 0; k < sh.dim; ++k) { double* o = va_arg(ap, double*); if (o) *o = v[k] * (t2 - t1); }
  va_end(ap);
  return kOfxStatOK;
}
OfxStatus paramSetValue(OfxParamHandle p, ...) {
  va_list ap; va_start(ap, p); OfxStatus st = vset(p, false, 0, ap); va_end(ap); return st;
}
OfxStatus paramSetValueAtTime(OfxParamHandle p, OfxTime t, ...) {
  va_list ap; va_start(ap, t); OfxStatus st = vset(p, true, t, ap); va_end(ap); return st;
}
OfxStatus paramGetNumKeys(OfxParamHandle p, unsigned int* n) {
  if (!p || !n) return kOfxStatErrBadHandle;
  std::lock_guard<std::mutex> lock(p->mutex);
  *n = static_cast<unsigned>(p->keys.size());
  return kOfxStatOK;
}
OfxStatus paramGetKeyTime(OfxParamHandle p, unsigned int nth, OfxTime* t) {
  if (!p || !t) return kOfxStatErrBadHandle;
  std::lock_guard<std::mutex> lock(p->mutex);
  if (nth >= p->keys.size()) return kOfxStatErrBadIndex;
  *t = std::next(p->keys.begin(), nth)->first;
  return kOfxStatOK;
}
OfxStatus paramGetKeyIndex(OfxParamHandle p, OfxTime t, int direction, int* index) {
  if (!p || !index) return kOfxStatErrBadHandle;
  std::lock_guard<std::mutex> lock(p->mutex);
  int k = 0, found = -1;
  for (auto& kv : p->keys) {
    if (direction == 0 && kv.first == t) { found = k; break; }
    if (direction < 0 && kv.first < t) found = k;
    if (direction > 0 && kv.first > t) { found = k; break; }
    ++k;
  }
  if (found < 0) return kOfxStatFailed;
  *index = found;
  return kOfxStatOK;
}
OfxStatus paramDeleteKey(OfxParamHandle p, OfxTime t) {
  if (!p) return kOfxStatErrBadHandle;
  std::lock_guard<std::mutex> lock(p->mutex);
  auto it = p->keys.find(t);
  if (it == p->keys.end()) return kOfxStatErrBadIndex;
  if (p->keys.size() == 1) p->value = it->second;
  p->keys.erase(it);
  return kOfxStatOK;
}
OfxStatus paramDeleteAllKeys(OfxParamHandle p) {
  if (!p) return kOfxStatErrBadHandle;
  std::lock_guard<std::mutex> lock(p->mutex);
  if (!p->keys.empty()) p->value = p->keys.begin()->second;
  p->keys.clear();
  return kOfxStatOK;
}
OfxStatus paramCopy(OfxParamHandle to, OfxParamHandle from, OfxTime offset, const OfxRangeD*) {
  if (!to || !from) return kOfxStatErrBadHandle;
  if (to->type != from->type) return kOfxStatErrValue;
  std::scoped_lock lock(to->mutex, from->mutex);
  to->value = from->value; to->str = from->str; to->keys.clear();
  for (auto& kv : from->keys) to->keys[kv.first + offset] = kv.second;
  return kOfxStatOK;
}
OfxStatus paramEditBegin(OfxParamSetHandle set, const char*) {
  if (!set) return kOfxStatErrBadHandle;
  ++set->editDepth;
  return kOfxStatOK;
}
OfxStatus paramEditEnd(OfxParamSetHandle set) {
  if (!set) return kOfxStatErrBadHandle;
  if (set->editDepth.load() <= 0) return kOfxStatFailed;
  --set->editDepth;
  return kOfxStatOK;
}

const OfxParameterSuiteV1 gParameterSuite = {
    paramDefine, paramGetHandle, paramSetGetPropertySet, paramGetPropertySet, paramGetValue,
    paramGetValueAtTime, paramGetDerivative, paramGetIntegral, paramSetValue, paramSetValueAtTime,
    paramGetNumKeys, paramGetKeyTime, paramGetKeyIndex, paramDeleteKey, paramDeleteAllKeys,
    paramCopy, paramEditBegin, paramEditEnd};

// Initialise an instance param from its descriptor (value = default).
void instantiateParam(OfxParamStruct& dst, const OfxParamStruct& src) {
  dst.name = src.name; dst.type = src.type;
  dst.props.props = src.props.props;
  dst.props.kind = "param";
  ParamShape sh = shapeOf(src.type);
  const PropValue* d = src.props.find(kOfxParamPropDefault);
  if (sh.kind == VKind::String) dst.str = (d && !d->s.empty()) ? d->s[0] : "";
  else if (sh.kind != VKind::None) {
    dst.value.assign(sh.dim, 0.0);
    for (int k = 0; k < sh.dim && d; ++k) {
      if (d->type == PType::Int && k < static_cast<int>(d->i.size())) dst.value[k] = d->i[k];
      if (d->type == PType::Double && k < static_cast<int>(d->d.size())) dst.value[k] = d->d[k];
    }
  }
}

// Parse a CLI value "a" or "a,b,c" (choice also accepts an option label) into the param.
bool parseParamValue(OfxParamStruct& p, const std::string& text, std::string& err) {
  ParamShape sh = shapeOf(p.type);
  if (sh.kind == VKind::None) { err = "param " + p.name + " has no value"; return false; }
  if (sh.kind == VKind::String) { p.str = text; return true; }
  if (p.type == kOfxParamTypeChoice) {
    auto opts = p.props.getStrings(kOfxParamPropChoiceOption);
    for (size_t k = 0; k < opts.size(); ++k)
      if (opts[k] == text) { p.value = {double(k)}; return true; }
  }
  if (p.type == kOfxParamTypeBoolean) {
    if (text == "true" || text == "on") { p.value = {1}; return true; }
    if (text == "false" || text == "off") { p.value = {0}; return true; }
  }
  std::vector<double> v;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    double x = std::strtod(item.c_str(), &end);
    if (end == item.c_str() || *end) { err = "bad value '" + text + "' for " + p.name; return false; }
    v.push_back(x);
  }
  if (static_cast<int>(v.size()) != sh.dim) {
    err = "param " + p.name + " needs " + std::to_string(sh.dim) + " values";
    return false;
  }
  if (sh.kind == VKind::Int)
    for (double x : v) if (x != std::floor(x)) { err = "param " + p.name + " is integer"; return false; }
  p.value = v;
  return true;
}

std::string paramValueJson(OfxParamStruct& p) {
  ParamShape sh = shapeOf(p.type);
  if (sh.kind == VKind::None) return "null";
  if (sh.kind == VKind::String) return jstr(p.str);
  std::vector<double> v = p.keys.empty() ? p.value : p.keys.begin()->second;
  std::string o = sh.dim > 1 ? "[" : "";
  for (int k = 0; k < sh.dim; ++k) {
    if (k) o += ",";
    o += sh.kind == VKind::Int ? std::to_string(std::lround(v[k])) : jnum(v[k]);
  }
  return o + (sh.dim > 1 ? "]" : "");
}
}  // namespace

// ============================================================================ recording
namespace {
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> messages;   // JSON objects
  std::vector<std::string> progress;   // JSON objects
  std::vector<std::string> actions;    // action names in call order
  std::map<std::string, int> actionCounts;
  std::string persistent;              // current persistent message JSON or ""
  int progressUpdates = 0;
  int cancelProgressAfter = -1;
  void action(const std::string& a) {
    std::lock_guard<std::mutex> l(mutex);
    if (actions.size() < 2000) actions.push_back(a);
    ++actionCounts[a];
  }
};
Recorder gRec;

std::string vformat(const char* fmt, va_list ap) {
  if (!fmt) return "";
  char buf[4096];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}
std::string msgJson(const char* type, const char* id, const std::string& text, bool persistent) {
  return std::string("{\"type\":") + jstr(type ? type : "") + ",\"id\":" + jstr(id ? id : "") +
         ",\"text\":" + jstr(text) + ",\"persistent\":" + (persistent ? "true" : "false") + "}";
}
OfxStatus message(void*, const char* type, const char* id, const char* fmt, ...) {
  va_list ap; va_start(ap, fmt); std::string text = vformat(fmt, ap); va_end(ap);
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.messages.push_back(msgJson(type, id, text, false));
  if (type && std::string(type) == kOfxMessageQuestion) return kOfxStatReplyYes;
  return kOfxStatOK;
}
OfxStatus setPersistentMessage(void*, const char* type, const char* id, const char* fmt, ...) {
  va_list ap; va_start(ap, fmt); std::string text = vformat(fmt, ap); va_end(ap);
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.persistent = msgJson(type, id, text, true);
  gRec.messages.push_back(gRec.persistent);
  return kOfxStatOK;
}
OfxStatus clearPersistentMessage(void*) {
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.persistent.clear();
  return kOfxStatOK;
}
const OfxMessageSuiteV2 gMessageSuite = {message, setPersistentMessage, clearPersistentMessage};

OfxStatus progressStartV1(void*, const char* label) {
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.progress.push_back("{\"call\":\"start\",\"label\":" + jstr(label ? label : "") + "}");
  return kOfxStatOK;
}
OfxStatus progressStartV2(void*, const char* msg, const char* id) {
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.progress.push_back("{\"call\":\"start\",\"label\":" + jstr(msg ? msg : "") +
                          ",\"id\":" + jstr(id ? id : "") + "}");
  return kOfxStatOK;
}
OfxStatus progressUpdate(void*, double v) {
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.progress.push_back("{\"call\":\"update\",\"value\":" + jnum(v) + "}");
  ++gRec.progressUpdates;
  if (gRec.cancelProgressAfter >= 0 && gRec.progressUpdates > gRec.cancelProgressAfter)
    return kOfxStatReplyNo;
  return kOfxStatOK;
}
OfxStatus progressEnd(void*) {
  std::lock_guard<std::mutex> l(gRec.mutex);
  gRec.progress.push_back("{\"call\":\"end\"}");
  return kOfxStatOK;
}
const OfxProgressSuiteV1 gProgressV1 = {progressStartV1, progressUpdate, progressEnd};
const OfxProgressSuiteV2 gProgressV2 = {progressStartV2, progressUpdate, progressEnd};

OfxStatus memoryAlloc(void*, size_t n, void** out) {
  if (!out) return kOfxStatErrBadHandle;
  *out = std::malloc(n ? n : 1);
  return *out ? kOfxStatOK : kOfxStatErrMemory;
}
OfxStatus memoryFree(void* p) { std::free(p); return kOfxStatOK; }
const OfxMemorySuiteV1 gMemorySuite = {memoryAlloc, memoryFree};
}  // namespace

// ============================================================================ multithread
struct OfxMutex {
  std::recursive_mutex m;
};
namespace {
struct ThreadState { unsigned index = 0; bool spawned = false; };
thread_local ThreadState tThread;
struct RenderCtx;
thread_local RenderCtx* tCtx = nullptr;
unsigned gMaxCpus = 4;

OfxStatus multiThread(OfxThreadFunctionV1 fn, unsigned n, void* arg) {
  if (!fn) return kOfxStatErrBadHandle;
  if (n == 0) n = gMaxCpus;
  if (tThread.spawned || n == 1) {  // nested or single: run in this thread
    for (unsigned k = 0; k < n; ++k) fn(k, n, arg);
    return kOfxStatOK;
  }
  RenderCtx* ctx = tCtx;
  std::vector<std::thread> threads;
  for (unsigned k = 0; k < n; ++k)
    threads.emplace_back([=] {
      tThread.index = k; tThread.spawned = true; tCtx = ctx;
      fn(k, n, arg);
    });
  for (auto& t : threads) t.join();
  return kOfxStatOK;
}
OfxStatus multiThreadNumCPUs(unsigned* n) {
  if (!n) return kOfxStatErrBadHandle;
  *n = gMaxCpus;
  return kOfxStatOK;
}
OfxStatus multiThreadIndex(unsigned* i) {
  if (!i) return kOfxStatErrBadHandle;
  *i = tThread.index;
  return kOfxStatOK;
}
int multiThreadIsSpawnedThread() { return tThread.spawned ? 1 : 0; }
OfxStatus mutexCreate(OfxMutexHandle* m, int lockCount) {
  if (!m) return kOfxStatErrBadHandle;
  *m = new OfxMutex;
  for (int k = 0; k < lockCount; ++k) (*m)->m.lock();
  return kOfxStatOK;
}
OfxStatus mutexDestroy(const OfxMutexHandle m) { if (!m) return kOfxStatErrBadHandle; delete m; return kOfxStatOK; }
OfxStatus mutexLock(const OfxMutexHandle m) { if (!m) return kOfxStatErrBadHandle; m->m.lock(); return kOfxStatOK; }
OfxStatus mutexUnLock(const OfxMutexHandle m) { if (!m) return kOfxStatErrBadHandle; m->m.unlock(); return kOfxStatOK; }
OfxStatus mutexTryLock(const OfxMutexHandle m) {
  if (!m) return kOfxStatErrBadHandle;
  return m->m.try_lock() ? kOfxStatOK : kOfxStatFailed;
}
const OfxMultiThreadSuiteV1 gMultiThreadSuite = {multiThread, multiThreadNumCPUs, multiThreadIndex,
                                                 multiThreadIsSpawnedThread, mutexCreate, mutexDestroy,
                                                 mutexLock, mutexUnLock, mutexTryLock};
}  // namespace

// ============================================================================ frames (.f32)
namespace {
struct Frame {
  int w = 0, h = 0, c = 0;
  std::vector<float> px;  // top-down, interleaved, native units of the depth
  float at(int x, int y, int ch) const { return px[(static_cast<size_t>(y) * w + x) * c + ch]; }
};

Frame readF32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  char magic[8];
  uint32_t dims[3];
  f.read(magic, 8);
  f.read(reinterpret_cast<char*>(dims), sizeof dims);
  if (!f || std::memcmp(magic, "FPF32\0\0\0", 8) != 0)
    throw std::runtime_error(path + ": not an FPF32 file");
  Frame fr;
  fr.w = int(dims[0]); fr.h = int(dims[1]); fr.c = int(dims[2]);
  if (fr.w <= 0 || fr.h <= 0 || fr.c <= 0 || fr.c > 4 || fr.w > 1 << 15 || fr.h > 1 << 15)
    throw std::runtime_error(path + ": bad dimensions");
  fr.px.resize(static_cast<size_t>(fr.w) * fr.h * fr.c);
  f.read(reinterpret_cast<char*>(fr.px.data()), std::streamsize(fr.px.size() * sizeof(float)));
  if (!f) throw std::runtime_error(path + ": truncated");
  return fr;
}
void writeF32(const std::string& path, const Frame& fr) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot write");
  uint32_t dims[3] = {uint32_t(fr.w), uint32_t(fr.h), uint32_t(fr.c)};
  f.write("FPF32\0\0\0", 8);
  f.write(reinterpret_cast<const char*>(dims), sizeof dims);
  f.write(reinterpret_cast<const char*>(fr.px.data()), std::streamsize(fr.px.size() * sizeof(float)));
}
// Nearest-neighbour resample to the render scale: output pixel (x, y) (top-down) samples
// source pixel (min(floor((x + 0.5) / s), w - 1), min(floor((y + 0.5) / s), h - 1)).
Frame scaleFrame(const Frame& in, double s) {
  if (s == 1.0) return in;
  Frame o;
  o.w = int(std::ceil(in.w * s)); o.h = int(std::ceil(in.h * s)); o.c = in.c;
  o.px.resize(static_cast<size_t>(o.w) * o.h * o.c);
  for (int y = 0; y < o.h; ++y) {
    int sy = std::min(int(std::floor((y + 0.5) / s)), in.h - 1);
    for (int x = 0; x < o.w; ++x) {
      int sx = std::min(int(std::floor((x + 0.5) / s)), in.w - 1);
      for (int ch = 0; ch < o.c; ++ch)
        o.px[(static_cast<size_t>(y) * o.w + x) * o.c + ch] = in.at(sx, sy, ch);
    }
  }
  return o;
}
uint64_t fnv1a(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ULL;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t k = 0; k < v.size() * sizeof(float); ++k) { h ^= p[k]; h *= 1099511628211ULL; }
  return h;
}
int bytesPerComponent(const std::string& depth) {
  if (depth == kOfxBitDepthByte) return 1;
  if (depth == kOfxBitDepthShort) return 2;
  return 4;
}
int componentCount(const std::string& comps) {
  if (comps == kOfxImageComponentRGBA) return 4;
  if (comps == kOfxImageComponentRGB) return 3;
  if (comps == kOfxImageComponentAlpha) return 1;
  return 0;
}
}  // namespace

// ============================================================================ clips, images, effects
struct OfxImageEffectStruct;

struct OfxImageClipStruct {
  std::string name;
  PS props;
  OfxImageEffectStruct* effect = nullptr;
  const Frame* source = nullptr;  // full-resolution input (nullptr: not connected / output)
};

namespace {
struct Session;  // per-render-command configuration

struct RenderCtx {
  double time = 0;
  double scale = 1;
  OfxRectI rod{0, 0, 0, 0};     // pixel coords at this scale
  OfxRectI window{0, 0, 0, 0};  // render window (pixel coords)
  std::map<std::string, Frame> scaled;  // clip name -> source at this scale
  std::vector<unsigned char> out;       // output buffer
  unsigned char* outData = nullptr;
  int outRowBytes = 0;
  std::atomic<long> abortCalls{0};
  std::atomic<bool> aborted{false};
  std::atomic<long long> imageNs{0};  // time spent in this host's clipGetImage (its own cost)
};

struct HostImage {
  PS props;
  std::vector<unsigned char> buf;  // empty for output images (they point into RenderCtx::out)
};
std::mutex gImagesMutex;
std::map<OfxPropertySetHandle, std::unique_ptr<HostImage>> gImages;
}  // namespace

struct OfxImageEffectStruct {
  PS props;
  OfxParamSetStruct params;
  std::map<std::string, std::unique_ptr<OfxImageClipStruct>> clips;
  std::vector<std::string> clipOrder;
  bool isInstance = false;
  Session* session = nullptr;
  std::atomic<long> abortCallsTotal{0};
  double time = 0;
};

namespace {
struct Session {
  std::string depth = kOfxBitDepthFloat;
  std::string comps = kOfxImageComponentRGBA;
  bool negativeRowBytes = false;
  double scale = 1.0;
  bool hasWindow = false;
  OfxRectI windowFull{0, 0, 0, 0};  // full-res pixel coords; scaled per render
  long abortAfter = -1;
  int first = 0, last = 0;
  Frame source, mask;
  bool hasMask = false;
  RenderCtx idleCtx;  // used by clipGetImage outside render (e.g. InstanceChanged)
};

constexpr int kRowPadding = 16;  // rowBytes != width * bytesPerPixel, on purpose

void storeValue(unsigned char* dst, const std::string& depth, float v) {
  if (depth == kOfxBitDepthByte) {
    long q = std::lround(v); q = std::clamp(q, 0L, 255L);
    *dst = static_cast<unsigned char>(q);
  } else if (depth == kOfxBitDepthShort) {
    long q = std::lround(v); q = std::clamp(q, 0L, 65535L);
    uint16_t s = static_cast<uint16_t>(q); std::memcpy(dst, &s, 2);
  } else {
    std::memcpy(dst, &v, 4);
  }
}
float loadValue(const unsigned char* src, const std::string& depth) {
  if (depth == kOfxBitDepthByte) return *src;
  if (depth == kOfxBitDepthShort) { uint16_t s; std::memcpy(&s, src, 2); return s; }
  float f; std::memcpy(&f, src, 4); return f;
}

// Layout of an image with `bounds`: returns the stride and the offset of the bottom row.
struct Layout { int stride; size_t bytes; size_t bottomOffset; int rowBytes; };
Layout layoutFor(const OfxRectI& b, int bpp, bool negative) {
  Layout l;
  int h = b.y2 - b.y1;
  l.stride = (b.x2 - b.x1) * bpp + kRowPadding;
  l.bytes = static_cast<size_t>(l.stride) * std::max(h, 1);
  l.bottomOffset = negative ? static_cast<size_t>(l.stride) * (h - 1) : 0;
  l.rowBytes = negative ? -l.stride : l.stride;
  return l;
}

void fillImageProps(PS& ps, void* data, const OfxRectI& bounds, const OfxRectI& rod, int rowBytes,
                    const std::string& depth, const std::string& comps, double scale) {
  ps.kind = "image"; ps.open = false;
  ps.defString(kOfxPropType, {kOfxTypeImage});
  ps.defPointer(kOfxImagePropData, {data});
  ps.defInt(kOfxImagePropBounds, {bounds.x1, bounds.y1, bounds.x2, bounds.y2});
  ps.defInt(kOfxImagePropRegionOfDefinition, {rod.x1, rod.y1, rod.x2, rod.y2});
  ps.defInt(kOfxImagePropRowBytes, {rowBytes});
  ps.defString(kOfxImageEffectPropPixelDepth, {depth});
  ps.defString(kOfxImageEffectPropComponents, {comps});
  ps.defString(kOfxImageEffectPropPreMultiplication,
               {comps == kOfxImageComponentRGB ? kOfxImageOpaque : kOfxImageAlphaPremultiplied});
  ps.defDouble(kOfxImagePropPixelAspectRatio, {1.0});
  ps.defDouble(kOfxImageEffectPropRenderScale, {scale, scale});
  ps.defString(kOfxImagePropField, {kOfxFieldNone});
  static std::atomic<long> serial{0};
  ps.defString(kOfxImagePropUniqueIdentifier, {"img" + std::to_string(++serial)});
}

OfxPropertySetHandle registerImage(std::unique_ptr<HostImage> img) {
  OfxPropertySetHandle h = &img->props;
  std::lock_guard<std::mutex> l(gImagesMutex);
  gImages[h] = std::move(img);
  return h;
}

OfxRectI intersect(const OfxRectI& a, const OfxRectI& b) {
  OfxRectI r{std::max(a.x1, b.x1), std::max(a.y1, b.y1), std::min(a.x2, b.x2), std::min(a.y2, b.y2)};
  if (r.x2 < r.x1) r.x2 = r.x1;
  if (r.y2 < r.y1) r.y2 = r.y1;
  return r;
}

RenderCtx& currentCtx(OfxImageEffectStruct* fx) { return tCtx ? *tCtx : fx->session->idleCtx; }

OfxStatus getPropertySet(OfxImageEffectHandle fx, OfxPropertySetHandle* ps) {
  if (!fx || !ps) return kOfxStatErrBadHandle;
  *ps = &fx->props;
  return kOfxStatOK;
}
OfxStatus getParamSet(OfxImageEffectHandle fx, OfxParamSetHandle* ps) {
  if (!fx || !ps) return kOfxStatErrBadHandle;
  *ps = &fx->params;
  return kOfxStatOK;
}
OfxStatus clipDefine(OfxImageEffectHandle fx, const char* name, OfxPropertySetHandle* ps) {
  if (!fx || !name) return kOfxStatErrBadHandle;
  if (fx->isInstance) return kOfxStatErrFatal;
  if (fx->clips.count(name)) return kOfxStatErrExists;
  auto c = std::make_unique<OfxImageClipStruct>();
  c->name = name; c->effect = fx; c->props.kind = "clip";
  c->props.defString(kOfxPropType, {"OfxTypeClip"});
  c->props.defString(kOfxPropName, {name});
  c->props.defString(kOfxPropLabel, {name});
  c->props.defString(kOfxImageEffectPropSupportedComponents, {});
  c->props.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  c->props.defInt(kOfxImageClipPropOptional, {0});
  c->props.defInt(kOfxImageClipPropIsMask, {0});
  c->props.defInt(kOfxImageEffectPropSupportsTiles, {1});
  c->props.defString("OfxImageClipPropFieldExtraction", {"OfxImageFieldDoubled"});
  if (ps) *ps = &c->props;
  fx->clipOrder.push_back(name);
  fx->clips[name] = std::move(c);
  return kOfxStatOK;
}
OfxStatus clipGetHandle(OfxImageEffectHandle fx, const char* name, OfxImageClipHandle* clip,
                        OfxPropertySetHandle* ps) {
  if (!fx || !name || !clip) return kOfxStatErrBadHandle;
  auto it = fx->clips.find(name);
  if (it == fx->clips.end()) return kOfxStatErrUnknown;
  *clip = it->second.get();
  if (ps) *ps = &it->second->props;
  return kOfxStatOK;
}
OfxStatus clipGetPropertySet(OfxImageClipHandle clip, OfxPropertySetHandle* ps) {
  if (!clip || !ps) return kOfxStatErrBadHandle;
  *ps = &clip->props;
  return kOfxStatOK;
}
OfxStatus clipGetImage(OfxImageClipHandle clip, OfxTime time, const OfxRectD* region,
                       OfxPropertySetHandle* out) {
  if (!clip || !out || !clip->effect || !clip->effect->session) return kOfxStatErrBadHandle;
  OfxImageEffectStruct* fx = clip->effect;
  Session& s = *fx->session;
  RenderCtx& ctx = currentCtx(fx);
  const auto t_img = std::chrono::steady_clock::now();
  struct AddTime {  // charges this call's time to the host, not the plugin
    RenderCtx& c;
    std::chrono::steady_clock::time_point t;
    ~AddTime() {
      c.imageNs += std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now() - t).count();
    }
  } add_time{ctx, t_img};
  std::string depth = clip->props.getString(kOfxImageEffectPropPixelDepth, s.depth);
  std::string comps = clip->props.getString(kOfxImageEffectPropComponents, s.comps);
  int bpp = bytesPerComponent(depth) * componentCount(comps);
  auto img = std::make_unique<HostImage>();
  if (clip->name == kOfxImageEffectOutputClipName) {
    if (!tCtx || !ctx.outData) return kOfxStatFailed;  // output only exists during render
    fillImageProps(img->props, ctx.outData, ctx.window, ctx.rod, ctx.outRowBytes, depth, comps,
                   ctx.scale);
    *out = registerImage(std::move(img));
    return kOfxStatOK;
  }
  if (!clip->source) return kOfxStatFailed;  // not connected
  auto sc = ctx.scaled.find(clip->name);
  Frame local;
  const Frame* fr;
  if (sc != ctx.scaled.end()) fr = &sc->second;
  else { local = scaleFrame(*clip->source, ctx.scale); fr = &local; }
  OfxRectI rod{0, 0, fr->w, fr->h};
  OfxRectI bounds = tCtx ? intersect(ctx.window, rod) : rod;
  if (region) {  // honour an explicit region (canonical -> pixel at this scale)
    OfxRectI r{int(std::floor(region->x1 * ctx.scale)), int(std::floor(region->y1 * ctx.scale)),
               int(std::ceil(region->x2 * ctx.scale)), int(std::ceil(region->y2 * ctx.scale))};
    bounds = intersect(r, rod);
  }
  Layout l = layoutFor(bounds, bpp, s.negativeRowBytes);
  img->buf.assign(l.bytes, 0);
  unsigned char* data = img->buf.data() + l.bottomOffset;
  int nc = componentCount(comps), bpc = bytesPerComponent(depth);
  for (int y = bounds.y1; y < bounds.y2; ++y) {
    int srcRow = fr->h - 1 - y;  // frames are top-down
    unsigned char* row = data + static_cast<long>(y - bounds.y1) * l.rowBytes;
    for (int x = bounds.x1; x < bounds.x2; ++x)
      for (int ch = 0; ch < nc; ++ch) {
        float v = ch < fr->c ? fr->at(x, srcRow, ch)
                             : (depth == kOfxBitDepthByte ? 255.f
                                : depth == kOfxBitDepthShort ? 65535.f : 1.f);
        storeValue(row + (x - bounds.x1) * nc * bpc + ch * bpc, depth, v);
      }
  }
  (void)time;
  fillImageProps(img->props, data, bounds, rod, l.rowBytes, depth, comps, ctx.scale);
  *out = registerImage(std::move(img));
  return kOfxStatOK;
}
OfxStatus clipReleaseImage(OfxPropertySetHandle h) {
  std::lock_guard<std::mutex> l(gImagesMutex);
  auto it = gImages.find(h);
  if (it == gImages.end()) return kOfxStatErrBadHandle;
  gImages.erase(it);
  return kOfxStatOK;
}
OfxStatus clipGetRegionOfDefinition(OfxImageClipHandle clip, OfxTime, OfxRectD* r) {
  if (!clip || !r || !clip->effect || !clip->effect->session) return kOfxStatErrBadHandle;
  const Frame& f = clip->effect->session->source;
  *r = OfxRectD{0, 0, double(f.w), double(f.h)};  // canonical = full-res pixels (PAR 1)
  return kOfxStatOK;
}
int abortFn(OfxImageEffectHandle fx) {
  if (!fx || !fx->session) return 0;
  ++fx->abortCallsTotal;
  if (!tCtx) return 0;
  long n = ++tCtx->abortCalls;
  if (fx->session->abortAfter >= 0 && n > fx->session->abortAfter) {
    tCtx->aborted = true;
    return 1;
  }
  return 0;
}
}  // namespace
struct OfxImageMemoryStruct { std::vector<unsigned char> bytes; int locks = 0; };
namespace {
OfxStatus imageMemoryAlloc(OfxImageEffectHandle, size_t n, OfxImageMemoryHandle* h) {
  if (!h) return kOfxStatErrBadHandle;
  try { *h = new OfxImageMemoryStruct; (*h)->bytes.resize(n); } catch (...) { return kOfxStatErrMemory; }
  return kOfxStatOK;
}
OfxStatus imageMemoryFree(OfxImageMemoryHandle h) { if (!h) return kOfxStatErrBadHandle; delete h; return kOfxStatOK; }
OfxStatus imageMemoryLock(OfxImageMemoryHandle h, void** p) {
  if (!h || !p) return kOfxStatErrBadHandle;
  ++h->locks; *p = h->bytes.data();
  return kOfxStatOK;
}
OfxStatus imageMemoryUnlock(OfxImageMemoryHandle h) {
  if (!h) return kOfxStatErrBadHandle;
  if (h->locks > 0) --h->locks;
  return kOfxStatOK;
}
const OfxImageEffectSuiteV1 gImageEffectSuite = {
    getPropertySet, getParamSet, clipDefine, clipGetHandle, clipGetPropertySet, clipGetImage,
    clipReleaseImage, clipGetRegionOfDefinition, abortFn, imageMemoryAlloc, imageMemoryFree,
    imageMemoryLock, imageMemoryUnlock};

// TimeLine: the handle is the effect instance.
OfxStatus tlGetTime(void* inst, double* t) {
  if (!inst || !t) return kOfxStatErrBadHandle;
  *t = static_cast<OfxImageEffectStruct*>(inst)->time;
  return kOfxStatOK;
}
OfxStatus tlGotoTime(void* inst, double t) {
  if (!inst) return kOfxStatErrBadHandle;
  static_cast<OfxImageEffectStruct*>(inst)->time = t;
  return kOfxStatOK;
}
OfxStatus tlGetTimeBounds(void* inst, double* a, double* b) {
  auto* fx = static_cast<OfxImageEffectStruct*>(inst);
  if (!fx || !a || !b || !fx->session) return kOfxStatErrBadHandle;
  *a = fx->session->first; *b = fx->session->last;
  return kOfxStatOK;
}
const OfxTimeLineSuiteV1 gTimeLineSuite = {tlGetTime, tlGotoTime, tlGetTimeBounds};

// ============================================================================ host
PS gHostProps;
std::mutex gSuitesMutex;
std::vector<std::string> gSuitesFetched;

const void* fetchSuite(OfxPropertySetHandle host, const char* name, int version) {
  if (host != &gHostProps || !name) return nullptr;
  std::string n = name;
  const void* s = nullptr;
  if (n == kOfxPropertySuite && version == 1) s = &gPropertySuite;
  else if (n == kOfxImageEffectSuite && version == 1) s = &gImageEffectSuite;
  else if (n == kOfxParameterSuite && version == 1) s = &gParameterSuite;
  else if (n == kOfxMemorySuite && version == 1) s = &gMemorySuite;
  else if (n == kOfxMultiThreadSuite && version == 1) s = &gMultiThreadSuite;
  else if (n == kOfxMessageSuite && (version == 1 || version == 2)) s = &gMessageSuite;
  else if (n == kOfxProgressSuite && version == 1) s = &gProgressV1;
  else if (n == kOfxProgressSuite && version == 2) s = &gProgressV2;
  else if (n == kOfxTimeLineSuite && version == 1) s = &gTimeLineSuite;
  std::lock_guard<std::mutex> l(gSuitesMutex);
  gSuitesFetched.push_back(n + " v" + std::to_string(version) + (s ? "" : " (missing)"));
  return s;
}
OfxHost gHost = {&gHostProps, fetchSuite};

void initHostProps() {
  PS& h = gHostProps;
  h.kind = "host"; h.open = false;
  h.defString(kOfxPropType, {kOfxTypeImageEffectHost});
  h.defString(kOfxPropName, {"org.faceplate.testhost"});
  h.defString(kOfxPropLabel, {"Faceplate OFX test host"});
  h.defInt(kOfxPropAPIVersion, {1, 4});
  h.defInt(kOfxPropVersion, {0, 1, 0});
  h.defString(kOfxPropVersionLabel, {"0.1.0"});
  h.defInt(kOfxImageEffectHostPropIsBackground, {1});
  h.defInt("OfxImageEffectPropSupportsOverlays", {0});
  h.defInt(kOfxImageEffectPropSupportsMultiResolution, {1});
  h.defInt(kOfxImageEffectPropSupportsTiles, {1});
  h.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  h.defString(kOfxImageEffectPropSupportedComponents,
              {kOfxImageComponentRGBA, kOfxImageComponentRGB, kOfxImageComponentAlpha});
  h.defString(kOfxImageEffectPropSupportedContexts,
              {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  h.defString(kOfxImageEffectPropSupportedPixelDepths,
              {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthFloat});
  h.defInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  h.defInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  h.defInt("OfxImageEffectPropSetableFrameRate", {0});
  h.defInt("OfxImageEffectPropSetableFielding", {0});
  h.defInt(kOfxImageEffectInstancePropSequentialRender, {2});
  h.defString(kOfxImageEffectHostPropNativeOrigin, {kOfxHostNativeOriginBottomLeft});
  h.defInt("OfxParamHostPropSupportsCustomInteract", {0});
  h.defInt("OfxParamHostPropSupportsKeyFrameAnimation", {1});
  h.defInt("OfxParamHostPropSupportsStringAnimation", {0});
  h.defInt("OfxParamHostPropSupportsCustomAnimation", {0});
  h.defInt("OfxParamHostPropSupportsBooleanAnimation", {0});
  h.defInt("OfxParamHostPropSupportsChoiceAnimation", {0});
  h.defInt("OfxParamHostPropSupportsParametricAnimation", {0});
  h.defInt("OfxParamHostPropMaxParameters", {-1});
  h.defInt("OfxParamHostPropMaxPages", {0});
  h.defInt("OfxParamHostPropPageRowColumnCount", {0, 0});
}
}  // namespace

// ============================================================================ bundle loading
namespace {
struct Binary {
  void* dl = nullptr;
  std::string path;
  std::vector<OfxPlugin*> plugins;
  std::string error;
  int setHostStatus = -1;  // -1: OfxSetHost not exported
};

std::string plistExecutable(const std::string& bundle) {
  std::ifstream f(bundle + "/Contents/Info.plist");
  if (!f) return "";
  std::stringstream ss; ss << f.rdbuf();
  std::string t = ss.str();
  size_t k = t.find("<key>CFBundleExecutable</key>");
  if (k == std::string::npos) return "";
  size_t a = t.find("<string>", k), b = t.find("</string>", k);
  if (a == std::string::npos || b == std::string::npos || b < a) return "";
  std::string v = t.substr(a + 8, b - a - 8);
  v.erase(0, v.find_first_not_of(" \t\r\n"));
  v.erase(v.find_last_not_of(" \t\r\n") + 1);
  return v;
}

Binary loadBundle(std::string bundle) {
  Binary b;
  while (bundle.size() > 1 && bundle.back() == '/') bundle.pop_back();
  std::string exe = plistExecutable(bundle);
  if (exe.empty()) { b.error = bundle + ": Contents/Info.plist has no CFBundleExecutable"; return b; }
  b.path = bundle + "/Contents/Linux-x86-64/" + exe;
  if (!std::ifstream(b.path) && exe.size() < 4) b.path += ".ofx";
  else if (!std::ifstream(b.path) && exe.compare(exe.size() - 4, 4, ".ofx") != 0) b.path += ".ofx";
  b.dl = dlopen(b.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!b.dl) { b.error = std::string("dlopen failed: ") + dlerror(); return b; }
  auto setHost = reinterpret_cast<OfxSetHostFn>(dlsym(b.dl, "OfxSetHost"));
  auto num = reinterpret_cast<OfxGetNumberOfPluginsFn>(dlsym(b.dl, "OfxGetNumberOfPlugins"));
  auto get = reinterpret_cast<OfxGetPluginFn>(dlsym(b.dl, "OfxGetPlugin"));
  if (!num || !get) { b.error = b.path + ": missing OfxGetNumberOfPlugins/OfxGetPlugin"; return b; }
  if (setHost) {
    b.setHostStatus = setHost(&gHost);
    if (b.setHostStatus != kOfxStatOK) { b.error = "OfxSetHost refused the host"; return b; }
  }
  int n = num();
  for (int k = 0; k < n; ++k) {
    OfxPlugin* p = get(k);
    if (p) b.plugins.push_back(p);
  }
  return b;
}

OfxStatus callAction(OfxPlugin* p, const char* action, const void* handle, PS* in, PS* out) {
  gRec.action(action);
  try {
    return p->mainEntry(action, handle, in, out);
  } catch (...) {  // a C ABI must not throw; count it as a failure
    return kOfxStatErrFatal;
  }
}

bool apiOk(const OfxPlugin* p) {
  return p->pluginApi && std::string(p->pluginApi) == kOfxImageEffectPluginApi &&
         p->apiVersion == kOfxImageEffectPluginApiVersion && p->pluginIdentifier;
}

void initDescriptorProps(PS& ps, const Binary& b) {
  ps.kind = "descriptor";
  ps.defString(kOfxPropType, {kOfxTypeImageEffect});
  ps.defString(kOfxPluginPropFilePath, {b.path});
  ps.defString(kOfxPropLabel, {""});
  ps.defString(kOfxImageEffectPluginPropGrouping, {""});
  ps.defString(kOfxImageEffectPropSupportedContexts, {});
  ps.defString(kOfxImageEffectPropSupportedPixelDepths, {});
  ps.defString(kOfxImageEffectPluginRenderThreadSafety, {kOfxImageEffectRenderInstanceSafe});
  ps.defInt(kOfxImageEffectPluginPropHostFrameThreading, {1});
  ps.defInt(kOfxImageEffectPropSupportsMultiResolution, {1});
  ps.defInt(kOfxImageEffectPropSupportsTiles, {1});
  ps.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  ps.defInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  ps.defInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  ps.defInt(kOfxImageEffectPluginPropSingleInstance, {0});
  ps.defInt(kOfxImageEffectInstancePropSequentialRender, {0});
  ps.defPointer(kOfxImageEffectPluginPropOverlayInteractV1, {nullptr});
}

std::string contextName(const std::string& c) {
  if (c == "filter") return kOfxImageEffectContextFilter;
  if (c == "general") return kOfxImageEffectContextGeneral;
  return c;
}

// Describe + DescribeInContext; returns the context descriptor (or nullptr with `err`).
std::unique_ptr<OfxImageEffectStruct> describeIn(OfxPlugin* p, const Binary& b,
                                                 const std::string& ctxName, OfxStatus& st,
                                                 std::vector<std::string>& errors) {
  auto d = std::make_unique<OfxImageEffectStruct>();
  initDescriptorProps(d->props, b);
  st = callAction(p, kOfxActionDescribe, d.get(), nullptr, nullptr);
  if (st != kOfxStatOK && st != kOfxStatReplyDefault) { errors.push_back("Describe failed"); return nullptr; }
  if (ctxName.empty()) return d;
  PS in; in.kind = "inArgs";
  in.defString(kOfxImageEffectPropContext, {ctxName});
  st = callAction(p, kOfxImageEffectActionDescribeInContext, d.get(), &in, nullptr);
  if (st != kOfxStatOK && st != kOfxStatReplyDefault) {
    errors.push_back("DescribeInContext(" + ctxName + ") failed: " + std::to_string(st));
    return nullptr;
  }
  if (d->props.getStrings(kOfxImageEffectPropSupportedPixelDepths).empty())
    errors.push_back("SupportedPixelDepths not set in Describe");
  if (!d->clips.count(kOfxImageEffectOutputClipName)) errors.push_back("no Output clip");
  if (ctxName == kOfxImageEffectContextFilter && !d->clips.count(kOfxImageEffectSimpleSourceClipName))
    errors.push_back("filter context without a Source clip");
  for (auto& kv : d->clips)
    if (kv.first != kOfxImageEffectOutputClipName &&
        kv.second->props.getStrings(kOfxImageEffectPropSupportedComponents).empty())
      errors.push_back("clip " + kv.first + " has no SupportedComponents");
  return d;
}

std::string describeJson(OfxImageEffectStruct& d) {
  std::string o = "{\"clips\":[";
  bool first = true;
  for (auto& name : d.clipOrder) {
    PS& cp = d.clips[name]->props;
    o += std::string(first ? "" : ",") + "{\"name\":" + jstr(name) +
         ",\"optional\":" + std::to_string(cp.getInt(kOfxImageClipPropOptional)) +
         ",\"is_mask\":" + std::to_string(cp.getInt(kOfxImageClipPropIsMask)) +
         ",\"components\":" + jvalue(*cp.find(kOfxImageEffectPropSupportedComponents), true) +
         ",\"props\":" + jprops(cp) + "}";
    first = false;
  }
  o += "],\"params\":[";
  first = true;
  std::map<std::string, std::string> pageOf;
  for (auto& p : d.params.params)
    if (p->type == kOfxParamTypePage)
      for (auto& c : p->props.getStrings(kOfxParamPropPageChild)) pageOf[c] = p->name;
  for (auto& p : d.params.params) {
    const PropValue* def = p->props.find(kOfxParamPropDefault);
    const PropValue* opts = p->props.find(kOfxParamPropChoiceOption);
    o += std::string(first ? "" : ",") + "{\"name\":" + jstr(p->name) + ",\"type\":" + jstr(p->type) +
         ",\"label\":" + jstr(p->props.getString(kOfxPropLabel)) +
         ",\"hint\":" + jstr(p->props.getString(kOfxParamPropHint)) +
         ",\"default\":" + (def ? jvalue(*def) : "null") +
         ",\"parent\":" + jstr(p->props.getString(kOfxParamPropParent)) +
         ",\"page\":" + jstr(pageOf.count(p->name) ? pageOf[p->name] : "") +
         ",\"secret\":" + std::to_string(p->props.getInt(kOfxParamPropSecret)) +
         ",\"options\":" + (opts ? jvalue(*opts, true) : "[]") +
         ",\"props\":" + jprops(p->props) + "}";
    first = false;
  }
  const PropValue* order = d.props.find(kOfxPluginPropParamPageOrder);
  o += "],\"page_order\":" + (order ? jvalue(*order, true) : std::string("[]"));
  return o + "}";
}

int cmdDescribe(const std::string& bundle) {
  Binary b = loadBundle(bundle);
  if (!b.error.empty()) {
    std::printf("{\"status\":\"error\",\"error\":%s}\n", jstr(b.error).c_str());
    return 2;
  }
  std::string o = "{\"status\":\"ok\",\"binary\":" + jstr(b.path) +
                  ",\"set_host_status\":" + std::to_string(b.setHostStatus) + ",\"plugins\":[";
  bool anyError = false;
  for (size_t k = 0; k < b.plugins.size(); ++k) {
    OfxPlugin* p = b.plugins[k];
    if (k) o += ",";
    if (!apiOk(p)) { o += "{\"error\":\"unsupported plugin API\"}"; anyError = true; continue; }
    p->setHost(&gHost);
    OfxStatus ls = callAction(p, kOfxActionLoad, nullptr, nullptr, nullptr);
    o += "{\"identifier\":" + jstr(p->pluginIdentifier) + ",\"api\":" + jstr(p->pluginApi) +
         ",\"api_version\":" + std::to_string(p->apiVersion) + ",\"version\":[" +
         std::to_string(p->pluginVersionMajor) + "," + std::to_string(p->pluginVersionMinor) +
         "],\"load_status\":" + std::to_string(ls);
    if (ls != kOfxStatOK && ls != kOfxStatReplyDefault) { o += "}"; anyError = true; continue; }
    OfxStatus st;
    std::vector<std::string> errors;
    auto d = describeIn(p, b, "", st, errors);
    o += ",\"describe_status\":" + std::to_string(st);
    if (d) {
      o += ",\"label\":" + jstr(d->props.getString(kOfxPropLabel)) +
           ",\"grouping\":" + jstr(d->props.getString(kOfxImageEffectPluginPropGrouping)) +
           ",\"contexts\":" + jvalue(*d->props.find(kOfxImageEffectPropSupportedContexts), true) +
           ",\"depths\":" + jvalue(*d->props.find(kOfxImageEffectPropSupportedPixelDepths), true) +
           ",\"props\":" + jprops(d->props) + ",\"in_context\":{";
      bool first = true;
      for (auto& c : d->props.getStrings(kOfxImageEffectPropSupportedContexts)) {
        if (c != kOfxImageEffectContextFilter && c != kOfxImageEffectContextGeneral) continue;
        OfxStatus cs;
        auto cd = describeIn(p, b, c, cs, errors);
        std::string shortName = c == kOfxImageEffectContextFilter ? "filter" : "general";
        o += std::string(first ? "" : ",") + jstr(shortName) + ":";
        o += cd ? describeJson(*cd) : std::string("null");
        first = false;
      }
      o += "}";
    }
    o += ",\"errors\":[";
    for (size_t e = 0; e < errors.size(); ++e) o += (e ? "," : "") + jstr(errors[e]);
    o += "]";
    if (!errors.empty()) anyError = true;
    OfxStatus us = callAction(p, kOfxActionUnload, nullptr, nullptr, nullptr);
    o += ",\"unload_status\":" + std::to_string(us) + "}";
  }
  o += "],\"suites_fetched\":[";
  for (size_t k = 0; k < gSuitesFetched.size(); ++k) o += (k ? "," : "") + jstr(gSuitesFetched[k]);
  o += "]}";
  std::printf("%s\n", o.c_str());
  if (b.dl) dlclose(b.dl);
  return anyError ? 2 : 0;
}
}  // namespace

// ============================================================================ render
namespace {
struct FrameResult {
  double time = 0;
  std::string status;
  int rc = 0;
  bool renderCalled = false;
  std::string identityClip;
  long abortCalls = 0;
  double ms = 0;
  double renderMs = 0;   // the plugin's Render action, wall time
  double hostImageMs = 0;  // of which spent in this host's clipGetImage
  Frame out;
};

struct RenderArgs {
  std::string bundle, plugin, context = "filter", input, output, mask;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::string> instanceChanged;
  int threads = 1;
  int cancelProgressAfter = -1;
};

void addRenderArgs(PS& in, double t, const OfxRectI& w, double s) {
  in.defDouble(kOfxPropTime, {t});
  in.defString(kOfxImageEffectPropFieldToRender, {kOfxFieldNone});
  in.defInt(kOfxImageEffectPropRenderWindow, {w.x1, w.y1, w.x2, w.y2});
  in.defDouble(kOfxImageEffectPropRenderScale, {s, s});
  in.defInt(kOfxImageEffectPropSequentialRenderStatus, {0});
  in.defInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
  in.defInt(kOfxImageEffectPropRenderQualityDraft, {0});
}

FrameResult renderOne(OfxPlugin* p, OfxImageEffectStruct* inst, Session& s, double t) {
  FrameResult r;
  r.time = t;
  auto t0 = std::chrono::steady_clock::now();
  RenderCtx ctx;
  ctx.time = t; ctx.scale = s.scale;
  for (auto& kv : inst->clips)
    if (kv.second->source) ctx.scaled[kv.first] = scaleFrame(*kv.second->source, s.scale);
  const Frame& src = ctx.scaled[kOfxImageEffectSimpleSourceClipName];
  ctx.rod = OfxRectI{0, 0, src.w, src.h};
  ctx.window = ctx.rod;
  if (s.hasWindow)
    ctx.window = intersect(ctx.rod, OfxRectI{int(std::floor(s.windowFull.x1 * s.scale)),
                                             int(std::floor(s.windowFull.y1 * s.scale)),
                                             int(std::ceil(s.windowFull.x2 * s.scale)),
                                             int(std::ceil(s.windowFull.y2 * s.scale))});
  std::string depth = s.depth, comps = s.comps;
  int nc = componentCount(comps), bpc = bytesPerComponent(depth);
  r.out.w = ctx.rod.x2; r.out.h = ctx.rod.y2; r.out.c = nc;
  r.out.px.assign(static_cast<size_t>(r.out.w) * r.out.h * nc, 0.f);
  tCtx = &ctx;

  PS in, out;
  in.kind = "inArgs"; out.kind = "outArgs";
  addRenderArgs(in, t, ctx.window, s.scale);
  out.defString(kOfxPropName, {""});
  out.defDouble(kOfxPropTime, {t});
  OfxStatus ist = callAction(p, kOfxImageEffectActionIsIdentity, inst, &in, &out);
  if (ist == kOfxStatOK) {
    r.identityClip = out.getString(kOfxPropName);
    auto it = ctx.scaled.find(r.identityClip);
    if (it == ctx.scaled.end()) { r.status = "failed"; r.rc = kOfxStatErrValue; }
    else {
      const Frame& f = it->second;
      unsigned char tmp[4];
      for (int y = 0; y < r.out.h; ++y)
        for (int x = 0; x < r.out.w; ++x)
          for (int ch = 0; ch < nc; ++ch) {
            storeValue(tmp, depth, ch < f.c ? f.at(x, y, ch) : 1.f);
            r.out.px[(static_cast<size_t>(y) * r.out.w + x) * nc + ch] = loadValue(tmp, depth);
          }
      r.status = "identity";
    }
  } else if (ist != kOfxStatReplyDefault) {
    r.status = "failed"; r.rc = ist;
  } else {
    Layout l = layoutFor(ctx.window, nc * bpc, s.negativeRowBytes);
    ctx.out.assign(l.bytes, 0);
    ctx.outData = ctx.out.data() + l.bottomOffset;
    ctx.outRowBytes = l.rowBytes;
    PS rin; rin.kind = "inArgs";
    addRenderArgs(rin, t, ctx.window, s.scale);
    r.renderCalled = true;
    const auto t_render = std::chrono::steady_clock::now();
    OfxStatus st = callAction(p, kOfxImageEffectActionRender, inst, &rin, nullptr);
    r.renderMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           t_render).count();
    r.hostImageMs = static_cast<double>(ctx.imageNs.load()) / 1e6;
    r.rc = st;
    r.status = st != kOfxStatOK ? "failed" : (ctx.aborted ? "aborted" : "ok");
    for (int y = ctx.window.y1; y < ctx.window.y2; ++y) {
      const unsigned char* row = ctx.outData + static_cast<long>(y - ctx.window.y1) * ctx.outRowBytes;
      int ty = r.out.h - 1 - y;
      for (int x = ctx.window.x1; x < ctx.window.x2; ++x)
        for (int ch = 0; ch < nc; ++ch)
          r.out.px[(static_cast<size_t>(ty) * r.out.w + x) * nc + ch] =
              loadValue(row + ((x - ctx.window.x1) * nc + ch) * bpc, depth);
    }
  }
  tCtx = nullptr;
  r.abortCalls = ctx.abortCalls.load();
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string outputPath(const std::string& pattern, int frame) {
  size_t a = pattern.find('#');
  if (a == std::string::npos) return pattern;
  size_t b = pattern.find_first_not_of('#', a);
  if (b == std::string::npos) b = pattern.size();
  char num[32];
  std::snprintf(num, sizeof num, "%0*d", int(b - a), frame);
  return pattern.substr(0, a) + num + pattern.substr(b);
}

int cmdRender(RenderArgs& a, Session& s) {
  std::string o = "{";
  auto fail = [&](const std::string& msg, int code) {
    std::printf("{\"status\":\"error\",\"error\":%s}\n", jstr(msg).c_str());
    return code;
  };
  try {
    s.source = readF32(a.input);
    if (!a.mask.empty()) { s.mask = readF32(a.mask); s.hasMask = true; }
  } catch (const std::exception& e) { return fail(e.what(), 1); }
  int nc = componentCount(s.comps);
  if (s.source.c != nc) return fail("input has " + std::to_string(s.source.c) + " channels, --components needs " + std::to_string(nc), 1);
  if (s.hasMask && (s.mask.c != 1 || s.mask.w != s.source.w || s.mask.h != s.source.h))
    return fail("mask must be 1 channel and the size of the input", 1);
  gRec.cancelProgressAfter = a.cancelProgressAfter;

  Binary b = loadBundle(a.bundle);
  if (!b.error.empty()) return fail(b.error, 2);
  OfxPlugin* p = nullptr;
  for (auto* q : b.plugins) if (apiOk(q) && a.plugin == q->pluginIdentifier) p = q;
  if (!p) return fail("plugin " + a.plugin + " not in bundle", 2);
  p->setHost(&gHost);
  OfxStatus ls = callAction(p, kOfxActionLoad, nullptr, nullptr, nullptr);
  if (ls != kOfxStatOK && ls != kOfxStatReplyDefault) return fail("Load failed: " + std::to_string(ls), 2);
  std::string ctxName = contextName(a.context);
  OfxStatus ds;
  std::vector<std::string> errors;
  auto desc = describeIn(p, b, ctxName, ds, errors);
  if (!desc) return fail("describe failed in context " + ctxName, 2);

  // ---- instance
  auto inst = std::make_unique<OfxImageEffectStruct>();
  inst->isInstance = true; inst->session = &s; inst->time = s.first;
  inst->props.props = desc->props.props;
  inst->props.kind = "instance";
  inst->props.defString(kOfxPropType, {kOfxTypeImageEffectInstance});
  inst->props.defString(kOfxImageEffectPropContext, {ctxName});
  inst->props.defInt(kOfxPropIsInteractive, {0});
  inst->props.defPointer(kOfxPropInstanceData, {nullptr});
  inst->props.defDouble("OfxImageEffectPropProjectSize", {double(s.source.w), double(s.source.h)});
  inst->props.defDouble("OfxImageEffectPropProjectOffset", {0, 0});
  inst->props.defDouble("OfxImageEffectPropProjectExtent", {double(s.source.w), double(s.source.h)});
  inst->props.defDouble(kOfxImageEffectPropProjectPixelAspectRatio, {1.0});
  inst->props.defDouble("OfxImageEffectInstancePropEffectDuration", {double(s.last - s.first + 1)});
  inst->props.defDouble("OfxImageEffectPropFrameRate", {24.0});
  inst->params.props.props = desc->params.props.props;
  for (auto& dp : desc->params.params) {
    auto ip = std::make_unique<OfxParamStruct>();
    instantiateParam(*ip, *dp);
    inst->params.params.push_back(std::move(ip));
  }
  for (auto& name : desc->clipOrder) {
    auto c = std::make_unique<OfxImageClipStruct>();
    OfxImageClipStruct& dc = *desc->clips[name];
    c->name = name; c->effect = inst.get();
    c->props.props = dc.props.props; c->props.kind = "clip";
    bool isMask = dc.props.getInt(kOfxImageClipPropIsMask) != 0;
    if (name == kOfxImageEffectSimpleSourceClipName) c->source = &s.source;
    else if (isMask && s.hasMask) c->source = &s.mask;
    bool connected = name == kOfxImageEffectOutputClipName || c->source != nullptr;
    std::string comps = isMask ? kOfxImageComponentAlpha : s.comps;
    c->props.defInt(kOfxImageClipPropConnected, {connected ? 1 : 0});
    c->props.defString(kOfxImageEffectPropPixelDepth, {s.depth});
    c->props.defString(kOfxImageEffectPropComponents, {comps});
    c->props.defString(kOfxImageClipPropUnmappedPixelDepth, {s.depth});
    c->props.defString(kOfxImageClipPropUnmappedComponents, {comps});
    c->props.defString(kOfxImageEffectPropPreMultiplication,
                       {comps == kOfxImageComponentRGB ? kOfxImageOpaque : kOfxImageAlphaPremultiplied});
    c->props.defDouble(kOfxImagePropPixelAspectRatio, {1.0});
    c->props.defDouble("OfxImageEffectPropFrameRate", {24.0});
    c->props.defDouble(kOfxImageEffectPropFrameRange, {double(s.first), double(s.last)});
    c->props.defDouble("OfxImageEffectPropUnmappedFrameRange", {double(s.first), double(s.last)});
    c->props.defDouble("OfxImageEffectPropUnmappedFrameRate", {24.0});
    c->props.defString("OfxImageClipPropFieldOrder", {"OfxFieldNone"});
    c->props.defInt("OfxImageClipPropContinuousSamples", {0});
    inst->clipOrder.push_back(name);
    inst->clips[name] = std::move(c);
  }
  OfxStatus cs = callAction(p, kOfxActionCreateInstance, inst.get(), nullptr, nullptr);
  o += "\"plugin\":" + jstr(a.plugin) + ",\"context\":" + jstr(ctxName) +
       ",\"depth\":" + jstr(s.depth) + ",\"components\":" + jstr(s.comps) +
       ",\"create_status\":" + std::to_string(cs);
  int exitCode = 0;
  if (cs != kOfxStatOK && cs != kOfxStatReplyDefault) exitCode = 3;

  // ---- params from the CLI (host side, as a user edit)
  for (auto& kv : a.params) {
    OfxParamStruct* prm = inst->params.find(kv.first);
    std::string err;
    if (!prm) return fail("unknown param " + kv.first, 1);
    if (!parseParamValue(*prm, kv.second, err)) return fail(err, 1);
  }
  // ---- InstanceChanged for each requested param (as a user edit)
  o += ",\"instance_changed\":[";
  for (size_t k = 0; k < a.instanceChanged.size() && exitCode == 0; ++k) {
    PS in; in.kind = "inArgs";
    in.defString(kOfxPropType, {kOfxTypeParameter});
    in.defString(kOfxPropName, {a.instanceChanged[k]});
    in.defString(kOfxPropChangeReason, {kOfxChangeUserEdited});
    in.defDouble(kOfxPropTime, {double(s.first)});
    in.defDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
    PS bin; bin.kind = "inArgs";
    bin.defString(kOfxPropChangeReason, {kOfxChangeUserEdited});
    callAction(p, kOfxActionBeginInstanceChanged, inst.get(), &bin, nullptr);
    OfxStatus st = callAction(p, kOfxActionInstanceChanged, inst.get(), &in, nullptr);
    callAction(p, kOfxActionEndInstanceChanged, inst.get(), &bin, nullptr);
    o += std::string(k ? "," : "") + "{\"name\":" + jstr(a.instanceChanged[k]) +
         ",\"status\":" + std::to_string(st) + "}";
  }
  o += "]";

  // ---- clip preferences
  PS prefs; prefs.kind = "outArgs";
  for (auto& name : inst->clipOrder) {
    PS& cp = inst->clips[name]->props;
    prefs.defString(kOfxImageClipPropComponentsPrefix + name, {cp.getString(kOfxImageEffectPropComponents)});
    prefs.defString(kOfxImageClipPropDepthPrefix + name, {s.depth});
    prefs.defDouble(kOfxImageClipPropPARPrefix + name, {1.0});
  }
  prefs.defString(kOfxImageEffectPropPreMultiplication,
                  {s.comps == kOfxImageComponentRGB ? kOfxImageOpaque : kOfxImageAlphaPremultiplied});
  prefs.defInt(kOfxImageEffectFrameVarying, {0});
  prefs.defDouble("OfxImageEffectPropFrameRate", {24.0});
  prefs.defInt("OfxImageClipPropContinuousSamples", {0});
  OfxStatus gs = exitCode ? kOfxStatFailed
                          : callAction(p, kOfxImageEffectActionGetClipPreferences, inst.get(), nullptr, &prefs);
  o += ",\"clip_preferences_status\":" + std::to_string(gs) + ",\"clip_preferences\":" + jprops(prefs);

  // ---- RoD at this render scale (Natron's probe)
  PS rin, rout; rin.kind = "inArgs"; rout.kind = "outArgs";
  rin.defDouble(kOfxPropTime, {double(s.first)});
  rin.defDouble(kOfxImageEffectPropRenderScale, {s.scale, s.scale});
  rout.defDouble(kOfxImageEffectPropRegionOfDefinition, {0, 0, double(s.source.w), double(s.source.h)});
  OfxStatus rs = exitCode ? kOfxStatFailed
                          : callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst.get(), &rin, &rout);
  o += ",\"rod_status\":" + std::to_string(rs);

  // ---- sequence render, frames spread over --threads host threads at once
  std::vector<FrameResult> results(s.last - s.first + 1);
  double wallMs = 0;
  if (exitCode == 0) {
    PS bin; bin.kind = "inArgs";
    bin.defDouble(kOfxImageEffectPropFrameRange, {double(s.first), double(s.last)});
    bin.defDouble(kOfxImageEffectPropFrameStep, {1.0});
    bin.defInt(kOfxPropIsInteractive, {0});
    bin.defDouble(kOfxImageEffectPropRenderScale, {s.scale, s.scale});
    bin.defInt(kOfxImageEffectPropSequentialRenderStatus, {0});
    bin.defInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
    OfxStatus bs = callAction(p, kOfxImageEffectActionBeginSequenceRender, inst.get(), &bin, nullptr);
    o += ",\"begin_sequence_status\":" + std::to_string(bs);
    auto w0 = std::chrono::steady_clock::now();
    std::atomic<int> next{0};
    auto worker = [&] {
      for (int k = next++; k < static_cast<int>(results.size()); k = next++)
        results[k] = renderOne(p, inst.get(), s, s.first + k);
    };
    std::vector<std::thread> pool;
    for (int k = 0; k < std::max(1, a.threads); ++k) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    wallMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
    OfxStatus es = callAction(p, kOfxImageEffectActionEndSequenceRender, inst.get(), &bin, nullptr);
    o += ",\"end_sequence_status\":" + std::to_string(es);
  }
  o += ",\"frames\":[";
  const bool rendered = exitCode == 0;
  for (size_t k = 0; k < results.size() && rendered; ++k) {
    FrameResult& r = results[k];
    char hash[32];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(r.out.px)));
    o += std::string(k ? "," : "") + "{\"time\":" + jnum(r.time) + ",\"status\":" + jstr(r.status) +
         ",\"rc\":" + std::to_string(r.rc) + ",\"render_called\":" + (r.renderCalled ? "true" : "false") +
         ",\"identity_clip\":" + jstr(r.identityClip) + ",\"abort_calls\":" + std::to_string(r.abortCalls) +
         ",\"hash\":" + jstr(hash) + ",\"ms\":" + jnum(r.ms) + ",\"render_ms\":" + jnum(r.renderMs) +
         ",\"host_image_ms\":" + jnum(r.hostImageMs) + ",\"width\":" + std::to_string(r.out.w) +
         ",\"height\":" + std::to_string(r.out.h) + "}";
    if (r.status == "failed") exitCode = 3;
    else if (r.status == "aborted" && exitCode == 0) exitCode = 4;
  }
  o += "],\"wall_ms\":" + jnum(wallMs) + ",\"threads\":" + std::to_string(a.threads);
  if (!a.output.empty() && exitCode != 3 && !results.empty()) {
    try {
      if (a.output.find('#') == std::string::npos) writeF32(a.output, results[0].out);
      else for (auto& r : results) writeF32(outputPath(a.output, int(r.time)), r.out);
    } catch (const std::exception& e) { return fail(e.what(), 1); }
  }
  o += ",\"params\":{";
  for (size_t k = 0; k < inst->params.params.size(); ++k) {
    auto& prm = *inst->params.params[k];
    std::lock_guard<std::mutex> l(prm.mutex);
    o += (k ? "," : "") + jstr(prm.name) + ":" + paramValueJson(prm);
  }
  o += "}";

  OfxStatus dst = callAction(p, kOfxActionDestroyInstance, inst.get(), nullptr, nullptr);
  OfxStatus us = callAction(p, kOfxActionUnload, nullptr, nullptr, nullptr);
  o += ",\"destroy_status\":" + std::to_string(dst) + ",\"unload_status\":" + std::to_string(us);
  {
    std::lock_guard<std::mutex> l(gRec.mutex);
    o += ",\"messages\":[";
    for (size_t k = 0; k < gRec.messages.size(); ++k) o += (k ? "," : "") + gRec.messages[k];
    o += "],\"persistent_message\":" + (gRec.persistent.empty() ? std::string("null") : gRec.persistent);
    o += ",\"progress\":[";
    for (size_t k = 0; k < gRec.progress.size(); ++k) o += (k ? "," : "") + gRec.progress[k];
    o += "],\"action_counts\":{";
    bool first = true;
    for (auto& kv : gRec.actionCounts) { o += (first ? "" : ",") + jstr(kv.first) + ":" + std::to_string(kv.second); first = false; }
    o += "}";
  }
  {
    std::lock_guard<std::mutex> l(gImagesMutex);
    o += ",\"leaked_images\":" + std::to_string(gImages.size());
  }
  o += ",\"abort_calls_total\":" + std::to_string(inst->abortCallsTotal.load());
  o += ",\"exit_code\":" + std::to_string(exitCode) + "}";
  std::printf("%s\n", o.c_str());
  inst.reset();
  desc.reset();
  if (b.dl) dlclose(b.dl);
  return exitCode;
}
}  // namespace

// ============================================================================ selftest
namespace {
int cmdSelftest() {
  std::vector<std::string> checks;
  int failed = 0;
  auto check = [&](const std::string& name, bool ok, const std::string& detail = "") {
    checks.push_back("{\"name\":" + jstr(name) + ",\"ok\":" + (ok ? "true" : "false") +
                     ",\"detail\":" + jstr(detail) + "}");
    if (!ok) ++failed;
  };
  const auto* ps = static_cast<const OfxPropertySuiteV1*>(gHost.fetchSuite(gHost.host, kOfxPropertySuite, 1));
  const auto* pa = static_cast<const OfxParameterSuiteV1*>(gHost.fetchSuite(gHost.host, kOfxParameterSuite, 1));
  check("fetch unknown suite is NULL", gHost.fetchSuite(gHost.host, "NoSuchSuite", 1) == nullptr);
  check("fetch wrong version is NULL", gHost.fetchSuite(gHost.host, kOfxPropertySuite, 9) == nullptr);
  check("message v1 and v2 share a struct",
        gHost.fetchSuite(gHost.host, kOfxMessageSuite, 1) == gHost.fetchSuite(gHost.host, kOfxMessageSuite, 2));

  PS open; open.kind = "test";
  int iv = 0; double dv = 0; char* sv = nullptr; int dim = -1;
  check("setInt ok", ps->propSetInt(&open, "a", 0, 7) == kOfxStatOK);
  check("getInt ok", ps->propGetInt(&open, "a", 0, &iv) == kOfxStatOK && iv == 7);
  check("get missing -> ErrUnknown", ps->propGetInt(&open, "missing", 0, &iv) == kOfxStatErrUnknown);
  check("get wrong type -> ErrValue", ps->propGetDouble(&open, "a", 0, &dv) == kOfxStatErrValue);
  check("set wrong type -> ErrValue", ps->propSetString(&open, "a", 0, "x") == kOfxStatErrValue);
  check("get bad index -> ErrBadIndex", ps->propGetInt(&open, "a", 3, &iv) == kOfxStatErrBadIndex);
  check("set gap index -> ErrBadIndex", ps->propSetInt(&open, "a", 5, 1) == kOfxStatErrBadIndex);
  check("set next index extends", ps->propSetInt(&open, "a", 1, 8) == kOfxStatOK);
  check("dimension 2", ps->propGetDimension(&open, "a", &dim) == kOfxStatOK && dim == 2);
  check("dimension missing -> ErrUnknown", ps->propGetDimension(&open, "zz", &dim) == kOfxStatErrUnknown);
  double d4[4] = {1.5, 2.5, 3.5, 4.5}, g4[4] = {0, 0, 0, 0};
  check("setDoubleN", ps->propSetDoubleN(&open, "r", 4, d4) == kOfxStatOK);
  check("getDoubleN", ps->propGetDoubleN(&open, "r", 4, g4) == kOfxStatOK && g4[3] == 4.5 && g4[0] == 1.5);
  check("getDoubleN too many -> ErrBadIndex", ps->propGetDoubleN(&open, "r", 5, g4) == kOfxStatErrBadIndex);
  const char* strs[2] = {"one", "two"};
  char* gs[2] = {nullptr, nullptr};
  check("setStringN", ps->propSetStringN(&open, "s", 2, strs) == kOfxStatOK);
  check("getStringN", ps->propGetStringN(&open, "s", 2, gs) == kOfxStatOK && std::string(gs[1]) == "two");
  check("getString", ps->propGetString(&open, "s", 0, &sv) == kOfxStatOK && std::string(sv) == "one");
  void* pv = nullptr;
  check("pointer round trip", ps->propSetPointer(&open, "p", 0, &iv) == kOfxStatOK &&
                                  ps->propGetPointer(&open, "p", 0, &pv) == kOfxStatOK && pv == &iv);
  PS closed; closed.open = false; closed.defInt("known", {3});
  check("closed set refuses unknown -> ErrUnknown", ps->propSetInt(&closed, "new", 0, 1) == kOfxStatErrUnknown);
  ps->propSetInt(&closed, "known", 0, 9);
  check("reset restores the initial value", ps->propReset(&closed, "known") == kOfxStatOK &&
                                                 closed.getInt("known") == 3);
  check("reset missing -> ErrUnknown", ps->propReset(&closed, "nope") == kOfxStatErrUnknown);
  check("NULL handle -> ErrBadHandle", ps->propGetInt(nullptr, "a", 0, &iv) == kOfxStatErrBadHandle);

  // Parameter suite, through the varargs entry points.
  OfxParamSetStruct set;
  OfxPropertySetHandle pp;
  OfxParamHandle h;
  check("define unknown type -> ErrUnknown", pa->paramDefine(&set, "NoType", "x", &pp) == kOfxStatErrUnknown);
  struct T { const char* type; const char* name; };
  const T types[] = {{kOfxParamTypeInteger, "i"}, {kOfxParamTypeDouble, "d"}, {kOfxParamTypeBoolean, "b"},
                     {kOfxParamTypeChoice, "c"}, {kOfxParamTypeRGB, "rgb"}, {kOfxParamTypeRGBA, "rgba"},
                     {kOfxParamTypeDouble2D, "d2"}, {kOfxParamTypeInteger2D, "i2"},
                     {kOfxParamTypeDouble3D, "d3"}, {kOfxParamTypeInteger3D, "i3"},
                     {kOfxParamTypeString, "s"}, {kOfxParamTypeCustom, "cu"}, {kOfxParamTypePushButton, "pb"}};
  for (auto& t : types) pa->paramDefine(&set, t.type, t.name, &pp);
  check("define duplicate -> ErrExists", pa->paramDefine(&set, kOfxParamTypeInteger, "i", &pp) == kOfxStatErrExists);
  check("handle unknown -> ErrUnknown", pa->paramGetHandle(&set, "nope", &h, nullptr) == kOfxStatErrUnknown);
  OfxParamHandle H[13];
  for (int k = 0; k < 13; ++k) pa->paramGetHandle(&set, types[k].name, &H[k], nullptr);
  int i1 = 0, i2a = 0, i2b = 0, i3a = 0, i3b = 0, i3c = 0;
  double d1 = 0, r = 0, g = 0, bb = 0, al = 0, x = 0, y = 0, z = 0;
  char* s1 = nullptr;
  check("int", pa->paramSetValue(H[0], -42) == 0 && pa->paramGetValue(H[0], &i1) == 0 && i1 == -42);
  check("double", pa->paramSetValue(H[1], 0.125) == 0 && pa->paramGetValue(H[1], &d1) == 0 && d1 == 0.125);
  check("bool", pa->paramSetValue(H[2], 1) == 0 && pa->paramGetValue(H[2], &i1) == 0 && i1 == 1);
  check("choice", pa->paramSetValue(H[3], 2) == 0 && pa->paramGetValue(H[3], &i1) == 0 && i1 == 2);
  check("rgb", pa->paramSetValue(H[4], 0.1, 0.2, 0.3) == 0 && pa->paramGetValue(H[4], &r, &g, &bb) == 0 &&
                   r == 0.1 && g == 0.2 && bb == 0.3);
  check("rgba", pa->paramSetValue(H[5], 0.1, 0.2, 0.3, 0.4) == 0 &&
                    pa->paramGetValue(H[5], &r, &g, &bb, &al) == 0 && al == 0.4 && r == 0.1);
  check("double2d", pa->paramSetValue(H[6], 1.5, -2.5) == 0 && pa->paramGetValue(H[6], &x, &y) == 0 &&
                        x == 1.5 && y == -2.5);
  check("integer2d", pa->paramSetValue(H[7], 3, -4) == 0 && pa->paramGetValue(H[7], &i2a, &i2b) == 0 &&
                         i2a == 3 && i2b == -4);
  check("double3d", pa->paramSetValue(H[8], 1.0, 2.0, 3.0) == 0 && pa->paramGetValue(H[8], &x, &y, &z) == 0 &&
                        z == 3.0);
  check("integer3d", pa->paramSetValue(H[9], 5, 6, 7) == 0 &&
                         pa->paramGetValue(H[9], &i3a, &i3b, &i3c) == 0 && i3a == 5 && i3c == 7);
  check("string", pa->paramSetValue(H[10], "héllo world") == 0 && pa->paramGetValue(H[10], &s1) == 0 &&
                      std::string(s1) == "héllo world");
  check("custom", pa->paramSetValue(H[11], "{\"k\":1}") == 0 && pa->paramGetValue(H[11], &s1) == 0 &&
                      std::string(s1) == "{\"k\":1}");
  check("pushbutton has no value", pa->paramGetValue(H[12], &i1) == kOfxStatErrUnsupported);
  // keys
  unsigned nk = 0; int ki = -1; double kt = 0;
  pa->paramSetValueAtTime(H[1], 10.0, 1.0);
  pa->paramSetValueAtTime(H[1], 20.0, 3.0);
  check("keys: count", pa->paramGetNumKeys(H[1], &nk) == 0 && nk == 2);
  check("keys: linear at 15", pa->paramGetValueAtTime(H[1], 15.0, &d1) == 0 && d1 == 2.0);
  check("keys: hold before first", pa->paramGetValueAtTime(H[1], 0.0, &d1) == 0 && d1 == 1.0);
  check("keys: key time", pa->paramGetKeyTime(H[1], 1, &kt) == 0 && kt == 20.0);
  check("keys: bad nth", pa->paramGetKeyTime(H[1], 2, &kt) == kOfxStatErrBadIndex);
  check("keys: index after 12", pa->paramGetKeyIndex(H[1], 12.0, 1, &ki) == 0 && ki == 1);
  check("keys: integral", pa->paramGetIntegral(H[1], 10.0, 12.0, &d1) == 0 && d1 == 2.0);
  check("keys: delete", pa->paramDeleteKey(H[1], 10.0) == 0 && pa->paramGetNumKeys(H[1], &nk) == 0 && nk == 1);
  check("keys: delete all", pa->paramDeleteAllKeys(H[1]) == 0 && pa->paramGetValue(H[1], &d1) == 0 && d1 == 3.0);
  pa->paramSetValueAtTime(H[0], 5.0, 9);
  check("int keys step", pa->paramGetValueAtTime(H[0], 7.0, &i1) == 0 && i1 == 9);
  check("edit begin/end", pa->paramEditBegin(&set, "x") == 0 && pa->paramEditEnd(&set) == 0 &&
                              pa->paramEditEnd(&set) == kOfxStatFailed);

  std::string o = "{\"checks\":[";
  for (size_t k = 0; k < checks.size(); ++k) o += (k ? "," : "") + checks[k];
  o += "],\"failed\":" + std::to_string(failed) + "}";
  std::printf("%s\n", o.c_str());
  return failed ? 3 : 0;
}

int usage(const char* msg) {
  std::fprintf(stderr, "faceplate-ofx-testhost: %s\nusage: faceplate-ofx-testhost describe BUNDLE | "
               "render BUNDLE --plugin ID --input IN.f32 [options] | selftest\n", msg);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  initHostProps();
  if (argc < 2) return usage("missing command");
  std::string cmd = argv[1];
  if (cmd == "selftest") return cmdSelftest();
  if (cmd == "describe") {
    if (argc != 3) return usage("describe takes one BUNDLE");
    return cmdDescribe(argv[2]);
  }
  if (cmd != "render" || argc < 3) return usage("unknown command");
  RenderArgs a;
  Session s;
  a.bundle = argv[2];
  auto parseRect = [](const std::string& t, OfxRectI& r) {
    return std::sscanf(t.c_str(), "%d,%d,%d,%d", &r.x1, &r.y1, &r.x2, &r.y2) == 4 && r.x2 > r.x1 && r.y2 > r.y1;
  };
  for (int k = 3; k < argc; ++k) {
    std::string opt = argv[k];
    if (k + 1 >= argc) return usage(("missing value for " + opt).c_str());
    std::string v = argv[++k];
    if (opt == "--plugin") a.plugin = v;
    else if (opt == "--context") {
      if (v != "filter" && v != "general") return usage("--context is filter or general");
      a.context = v;
    } else if (opt == "--input") a.input = v;
    else if (opt == "--output") a.output = v;
    else if (opt == "--mask") a.mask = v;
    else if (opt == "--depth") {
      if (v == "byte") s.depth = kOfxBitDepthByte;
      else if (v == "short") s.depth = kOfxBitDepthShort;
      else if (v == "float") s.depth = kOfxBitDepthFloat;
      else return usage("--depth is byte, short or float");
    } else if (opt == "--components") {
      if (v == "RGBA") s.comps = kOfxImageComponentRGBA;
      else if (v == "RGB") s.comps = kOfxImageComponentRGB;
      else return usage("--components is RGBA or RGB");
    } else if (opt == "--rowbytes") {
      if (v != "positive" && v != "negative") return usage("--rowbytes is positive or negative");
      s.negativeRowBytes = v == "negative";
    } else if (opt == "--render-scale") {
      s.scale = std::atof(v.c_str());
      if (!(s.scale > 0 && s.scale <= 1)) return usage("--render-scale must be in (0, 1]");
    } else if (opt == "--param") {
      size_t eq = v.find('=');
      if (eq == std::string::npos) return usage("--param needs name=value");
      a.params.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (opt == "--threads") {
      a.threads = std::atoi(v.c_str());
      if (a.threads < 1 || a.threads > 64) return usage("--threads must be 1..64");
    } else if (opt == "--mt-cpus") {
      int n = std::atoi(v.c_str());
      if (n < 1 || n > 64) return usage("--mt-cpus must be 1..64");
      gMaxCpus = unsigned(n);
    } else if (opt == "--frames") {
      if (std::sscanf(v.c_str(), "%d-%d", &s.first, &s.last) != 2) {
        s.first = s.last = std::atoi(v.c_str());
      }
      if (s.last < s.first || s.last - s.first > 10000) return usage("bad --frames");
    } else if (opt == "--abort-after") s.abortAfter = std::atol(v.c_str());
    else if (opt == "--instance-changed") a.instanceChanged.push_back(v);
    else if (opt == "--cancel-progress-after") a.cancelProgressAfter = std::atoi(v.c_str());
    else if (opt == "--window") {
      if (!parseRect(v, s.windowFull)) return usage("--window is x1,y1,x2,y2");
      s.hasWindow = true;
    } else return usage(("unknown option " + opt).c_str());
  }
  if (a.plugin.empty() || a.input.empty()) return usage("render needs --plugin and --input");
  return cmdRender(a, s);
}
