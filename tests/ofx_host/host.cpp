// faceplate-ofx-testhost: a small OpenFX image-effect host used only by the tests. It is no
// friendlier than Natron 2.5: closed property sets, clip preferences applied, a fresh thread per
// frame, Begin/EndSequenceRender around every frame, instances created with unconnected inputs and
// probed at render scale 0.5, masks with their own RoD, InstanceChanged while frames render.
//
//   faceplate-ofx-testhost describe BUNDLE
//   faceplate-ofx-testhost render BUNDLE --plugin ID [--context filter|general] --input IN.f32
//       [--output OUT.f32] [--depth byte|short|float] [--components RGBA|RGB]
//       [--rowbytes positive|negative] [--render-scale S] [--param name=value]... [--threads N]
//       [--frames a-b] [--source-range a,b] [--preload-local LIB]...
//       [--abort-after K] [--abort-at F:MS] [--stagger-ms MS] [--mask MASK.f32]
//       [--mask-rod x1,y1,x2,y2] [--instance-changed NAME]...
//       [--instance-changed-during-render NAME]... [--cancel-progress-after K]
//       [--window x1,y1,x2,y2] [--mt-cpus N]
//   faceplate-ofx-testhost selftest        (host-side checks of the property and param suites)
//
// Image files are ".f32": a 20-byte header (8 bytes "FPF32\0\0\0", uint32 LE width, height,
// channels) then top-down float32 rows (pixels interleaved), values in the depth's native
// units (byte 0..255, short 0..65535, float as is). JSON goes to stdout. Exit codes: 0 all frames
// rendered (or identity), 1 usage, 2 load/describe failure, 3 a frame failed, 4 a frame aborted.
#include <dirent.h>
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cfloat>
#include <climits>
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
  int dim = 1;        // the declared dimension; 0: variable (grows by one at a time)
};

// Every property set is closed, as in Natron's HostSupport: it holds exactly the properties the
// host declared for that kind of object (the OFX 1.4 lists, see "declare*" below). A set or get
// of any other name fails with kOfxStatErrUnknown; a wrong type with kOfxStatErrValue; an index
// or count past the declared dimension with kOfxStatErrBadIndex.
struct OfxPropertySetStruct {
  std::string kind;   // for diagnostics
  std::map<std::string, PropEntry> props;
  std::recursive_mutex mutex;

  // Host side: declare (or redeclare) a property with its value, which is also its reset value.
  // dim < 0: fixed at the number of values given; 0: variable; > 0: fixed (values padded).
  void def(const std::string& n, PropValue v, int dim) {
    PropEntry e;
    e.dim = dim < 0 ? static_cast<int>(v.size()) : dim;
    if (e.dim > 0 && static_cast<int>(v.size()) < e.dim) v.resize(static_cast<size_t>(e.dim));
    e.value = v;
    e.initial = v;
    props[n] = std::move(e);
  }
  void defInt(const std::string& n, std::vector<int> v, int dim = -1) {
    PropValue p; p.type = PType::Int; p.i = std::move(v); def(n, std::move(p), dim);
  }
  void defDouble(const std::string& n, std::vector<double> v, int dim = -1) {
    PropValue p; p.type = PType::Double; p.d = std::move(v); def(n, std::move(p), dim);
  }
  void defString(const std::string& n, std::vector<std::string> v, int dim = -1) {
    PropValue p; p.type = PType::String; p.s = std::move(v); def(n, std::move(p), dim);
  }
  void defPointer(const std::string& n, std::vector<void*> v, int dim = -1) {
    PropValue p; p.type = PType::Pointer; p.p = std::move(v); def(n, std::move(p), dim);
  }
  // Host side: change the value of a declared property, keeping its dimension.
  void setStrings(const std::string& n, std::vector<std::string> v) {
    auto it = props.find(n);
    if (it == props.end()) defString(n, std::move(v));
    else it->second.value.s = std::move(v);
  }
  void setString(const std::string& n, const std::string& v) { setStrings(n, {v}); }
  void setInt(const std::string& n, int v) {
    auto it = props.find(n);
    if (it == props.end()) defInt(n, {v});
    else it->second.value.i.assign(1, v);
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
OfxStatus withProp(OfxPropertySetHandle h, const char* name, PType type, F&& f) {
  if (!h || !name) return kOfxStatErrBadHandle;
  std::lock_guard<std::recursive_mutex> lock(h->mutex);
  auto it = h->props.find(name);
  if (it == h->props.end()) return kOfxStatErrUnknown;  // closed: nothing is created on set
  if (it->second.value.type != type) return kOfxStatErrValue;
  return f(it->second);
}

template <typename T>
std::vector<T>& slot(PropValue& v);
template <> std::vector<void*>& slot<void*>(PropValue& v) { return v.p; }
template <> std::vector<std::string>& slot<std::string>(PropValue& v) { return v.s; }
template <> std::vector<double>& slot<double>(PropValue& v) { return v.d; }
template <> std::vector<int>& slot<int>(PropValue& v) { return v.i; }

template <typename In> bool isNaN(const In&) { return false; }
template <> bool isNaN<double>(const double& v) { return std::isnan(v); }

template <typename T, typename In>
OfxStatus setOne(OfxPropertySetHandle h, const char* name, PType type, int index, In value) {
  if (isNaN(value)) return kOfxStatErrValue;  // as HostSupport
  return withProp(h, name, type, [&](PropEntry& e) {
    auto& vec = slot<T>(e.value);
    if (index < 0) return kOfxStatErrBadIndex;
    if (e.dim > 0 && index >= e.dim) return kOfxStatErrBadIndex;
    if (static_cast<size_t>(index) > vec.size()) return kOfxStatErrBadIndex;  // no gaps
    if (static_cast<size_t>(index) == vec.size()) vec.resize(static_cast<size_t>(index) + 1);
    vec[static_cast<size_t>(index)] = T(value);
    return kOfxStatOK;
  });
}
template <typename T, typename In>
OfxStatus setN(OfxPropertySetHandle h, const char* name, PType type, int count, const In* values) {
  if (count < 0) return kOfxStatErrBadIndex;
  if (count > 0 && !values) return kOfxStatErrBadHandle;
  for (int k = 0; k < count; ++k)
    if (isNaN(values[k])) return kOfxStatErrValue;
  return withProp(h, name, type, [&](PropEntry& e) {
    auto& vec = slot<T>(e.value);
    if (e.dim > 0) {  // fixed: the first `count` values
      if (count > e.dim) return kOfxStatErrBadIndex;
      for (int k = 0; k < count; ++k) vec[static_cast<size_t>(k)] = T(values[k]);
    } else {
      vec.assign(values, values + count);
    }
    return kOfxStatOK;
  });
}
template <typename T, typename Out, typename Conv>
OfxStatus getOne(OfxPropertySetHandle h, const char* name, PType type, int index, Out* out,
                 Conv conv) {
  if (!out) return kOfxStatErrBadHandle;
  return withProp(h, name, type, [&](PropEntry& e) {
    auto& vec = slot<T>(e.value);
    if (index < 0 || static_cast<size_t>(index) >= vec.size()) return kOfxStatErrBadIndex;
    *out = conv(vec[static_cast<size_t>(index)]);
    return kOfxStatOK;
  });
}
template <typename T, typename Out, typename Conv>
OfxStatus getN(OfxPropertySetHandle h, const char* name, PType type, int count, Out* out,
               Conv conv) {
  if (!out) return kOfxStatErrBadHandle;
  return withProp(h, name, type, [&](PropEntry& e) {
    auto& vec = slot<T>(e.value);
    if (count < 0 || static_cast<size_t>(count) > vec.size()) return kOfxStatErrBadIndex;
    for (int k = 0; k < count; ++k) out[k] = conv(vec[static_cast<size_t>(k)]);
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
  *count = it->second.dim > 0 ? it->second.dim : static_cast<int>(it->second.value.size());
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

// The parameter set's property set is its effect's (descriptor or instance), as in HostSupport:
// `props` points at it (at `ownProps` for a set that stands alone, as in selftest).
struct OfxParamSetStruct {
  PS ownProps;
  PS* props = &ownProps;
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

// The properties of a parameter descriptor of type `type`, per type as HostSupport declares them
// (OFX 1.4: ofxParam.h), with their defaults.
void declareParam(PS& ps, const std::string& type, const std::string& name) {
  ps.kind = "param";
  // universal
  ps.defString(kOfxPropType, {kOfxTypeParameter});
  ps.defInt(kOfxParamPropSecret, {0});
  ps.defString(kOfxParamPropHint, {""});
  ps.defString(kOfxParamPropScriptName, {name});
  ps.defString(kOfxParamPropParent, {""});
  ps.defInt(kOfxParamPropEnabled, {1});
  ps.defPointer("OfxParamPropDataPtr", {nullptr});
  ps.defString(kOfxParamPropType, {type});
  ps.defString(kOfxPropName, {name});
  ps.defString(kOfxPropLabel, {name});
  ps.defString(kOfxPropShortLabel, {name});
  ps.defString(kOfxPropLongLabel, {name});
  ps.defString(kOfxPropIcon, {"", ""});
  const ParamShape sh = shapeOf(type);
  const bool isDouble = type == kOfxParamTypeDouble || type == kOfxParamTypeDouble2D ||
                        type == kOfxParamTypeDouble3D;
  const bool isInt = type == kOfxParamTypeInteger || type == kOfxParamTypeInteger2D ||
                     type == kOfxParamTypeInteger3D;
  const bool isColour = type == kOfxParamTypeRGB || type == kOfxParamTypeRGBA;
  if (sh.kind != VKind::None) {  // value-holding params
    ps.defInt("OfxParamPropIsAnimating", {0});
    ps.defInt("OfxParamPropIsAutoKeying", {0});
    ps.defInt(kOfxParamPropPersistant, {1});
    ps.defInt(kOfxParamPropEvaluateOnChange, {1});
    ps.defInt(kOfxParamPropCanUndo, {1});
    ps.defString(kOfxParamPropCacheInvalidation, {"OfxParamInvalidateValueChange"});
    // Strings, custom, booleans and choices do not animate by default (HostSupport).
    const bool animates = type != kOfxParamTypeCustom && type != kOfxParamTypeString &&
                          type != kOfxParamTypeBoolean && type != kOfxParamTypeChoice &&
                          type != kOfxParamTypeStrChoice;
    ps.defInt(kOfxParamPropAnimates, {animates ? 1 : 0});
    if (sh.kind == VKind::Int) ps.defInt(kOfxParamPropDefault, std::vector<int>(sh.dim, 0));
    if (sh.kind == VKind::Double)
      ps.defDouble(kOfxParamPropDefault, std::vector<double>(sh.dim, 0.0));
    if (sh.kind == VKind::String) ps.defString(kOfxParamPropDefault, {""});
  }
  if (type == kOfxParamTypeString) {
    ps.defString(kOfxParamPropStringMode, {kOfxParamStringIsSingleLine});
    ps.defInt("OfxParamPropStringFilePathExists", {1});
  }
  if (isDouble || isInt || isColour) {  // numeric
    const int d = sh.dim;
    if (sh.kind == VKind::Double) {
      const double lo = isColour ? 0.0 : -DBL_MAX, hi = isColour ? 1.0 : DBL_MAX;
      ps.defDouble(kOfxParamPropDisplayMin, std::vector<double>(d, lo));
      ps.defDouble(kOfxParamPropDisplayMax, std::vector<double>(d, hi));
      ps.defDouble(kOfxParamPropMin, std::vector<double>(d, -DBL_MAX));
      ps.defDouble(kOfxParamPropMax, std::vector<double>(d, DBL_MAX));
      ps.defDouble(kOfxParamPropIncrement, {1.0});
      ps.defInt(kOfxParamPropDigits, {2});
    } else {
      ps.defInt(kOfxParamPropDisplayMin, std::vector<int>(d, INT_MIN));
      ps.defInt(kOfxParamPropDisplayMax, std::vector<int>(d, INT_MAX));
      ps.defInt(kOfxParamPropMin, std::vector<int>(d, INT_MIN));
      ps.defInt(kOfxParamPropMax, std::vector<int>(d, INT_MAX));
    }
    if (isDouble) {
      ps.defString(kOfxParamPropDoubleType, {"OfxParamDoubleTypePlain"});
      ps.defString(kOfxParamPropDefaultCoordinateSystem, {kOfxParamCoordinatesCanonical});
      if (d == 1) ps.defInt("OfxParamPropShowTimeMarker", {0});
    }
    if ((isDouble || isInt) && d == 2) ps.defString("OfxParamPropDimensionLabel", {"x", "y"});
    if ((isDouble || isInt) && d == 3) ps.defString("OfxParamPropDimensionLabel", {"x", "y", "z"});
    if (type == kOfxParamTypeRGB) ps.defString("OfxParamPropDimensionLabel", {"r", "g", "b"});
    if (type == kOfxParamTypeRGBA)
      ps.defString("OfxParamPropDimensionLabel", {"r", "g", "b", "a"});
  }
  if (type != kOfxParamTypeGroup && type != kOfxParamTypePage) {  // may have an interact
    ps.defPointer("OfxParamPropInteractV1", {nullptr});
    ps.defDouble("OfxParamPropInteractSize", {0.0, 0.0});
    ps.defDouble("OfxParamPropInteractSizeAspect", {1.0});
    ps.defDouble("OfxParamPropInteractMinimumSize", {10.0, 10.0});
    ps.defInt("OfxParamPropInteractPreferedSize", {10, 10});
  }
  if (type == kOfxParamTypeChoice) ps.defString(kOfxParamPropChoiceOption, {}, 0);
  if (type == kOfxParamTypeStrChoice) {
    ps.defString(kOfxParamPropChoiceOption, {}, 0);
    ps.defString("OfxParamPropChoiceEnum", {}, 0);
  }
  if (type == kOfxParamTypeCustom) ps.defPointer("OfxParamPropCustomCallbackV1", {nullptr});
  if (type == kOfxParamTypePage) ps.defString(kOfxParamPropPageChild, {}, 0);
  if (type == kOfxParamTypeGroup) ps.defInt(kOfxParamPropGroupOpen, {1});
}

OfxStatus paramDefine(OfxParamSetHandle set, const char* type, const char* name,
                      OfxPropertySetHandle* props) {
  if (!set || !type || !name) return kOfxStatErrBadHandle;
  if (!knownParamType(type)) return kOfxStatErrUnknown;
  if (set->find(name)) return kOfxStatErrExists;
  auto p = std::make_unique<OfxParamStruct>();
  p->name = name; p->type = type;
  declareParam(p->props, type, name);
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
  *props = set->props;
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
  std::string frameComps;          // the components of `source` (RGBA, RGB or Alpha)
  OfxRectI rod{0, 0, 0, 0};        // the input's RoD in full-resolution pixels (y up)
};

namespace {
struct Session;  // per-render-command configuration

struct RenderCtx {
  double time = 0;
  double scale = 1;
  OfxRectI rod{0, 0, 0, 0};     // pixel coords at this scale
  OfxRectI window{0, 0, 0, 0};  // render window (pixel coords)
  const std::map<std::string, Frame>* scaled = nullptr;  // clip name -> input at this scale
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
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
  OfxParamSetStruct params;  // its property set is `props` (see OfxParamSetStruct)
  OfxImageEffectStruct() { params.props = &props; }
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
  double abortFrame = 0;     // --abort-at F:MS: abort frame F ...
  long abortAtMs = -1;       // ... once its render has run this long
  int first = 0, last = 0;
  bool hasSourceRange = false;  // --source-range: the Source clip's frame range (else first-last)
  double sourceFirst = 0, sourceLast = 0;
  Frame source, mask;
  bool hasMask = false;
  bool hasMaskRod = false;
  OfxRectI maskRod{0, 0, 0, 0};  // --mask-rod, full-res pixels (y up); else the Source's RoD
  std::map<std::string, Frame> scaled;  // inputs at the render scale used (shared, read-only)
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
float depthMax(const std::string& depth) {
  if (depth == kOfxBitDepthByte) return 255.f;
  if (depth == kOfxBitDepthShort) return 65535.f;
  return 1.f;
}
// Channel `ch` of pixel (x, y) (top-down) of a frame holding `from` components, as `to`
// components: RGB <-> RGBA adds an opaque alpha (`one`) or drops it, Alpha from RGBA is its alpha
// (from RGB: opaque), RGB(A) from Alpha is black with that alpha. Natron converts the same way.
float convertedChannel(const Frame& f, const std::string& from, int x, int y,
                       const std::string& to, int ch, float one) {
  const int nf = componentCount(from);
  const bool wantAlpha = (to == kOfxImageComponentAlpha) || (to == kOfxImageComponentRGBA && ch == 3);
  if (wantAlpha) {
    if (nf == 4) return f.at(x, y, 3);
    if (nf == 1) return f.at(x, y, 0);
    return one;
  }
  return nf >= 3 ? f.at(x, y, ch) : 0.f;  // a colour channel
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

// ---- the closed property lists (OFX 1.4, as Natron's HostSupport declares them) -------------
// Natron's extensions are declared only where a plugin sets them on a descriptor (channel
// selector, host masking and mixing; a clip's secret flag and hint); the Nuke, Vegas, Tuttle and
// Resolve vendor extensions Natron also knows are not: a plugin setting one fails here.
constexpr const char* kNatronChannelSelector = "NatronOfxImageEffectPropChannelSelector";
constexpr const char* kNatronHostMasking = "kNatronOfxImageEffectPropHostMasking";
constexpr const char* kNatronHostMixing = "kNatronOfxImageEffectPropHostMixing";

// An effect descriptor. Its parameter set has no properties of its own: paramSetGetPropertySet
// gives this same set, so kOfxPluginPropParamPageOrder (not in HostSupport's list) is unknown.
void declareEffectDescriptor(PS& ps, const std::string& filePath) {
  ps.kind = "descriptor";
  ps.defString(kOfxPropType, {kOfxTypeImageEffect});
  ps.defString(kOfxPropLabel, {""});
  ps.defString(kOfxPropShortLabel, {""});
  ps.defString(kOfxPropLongLabel, {""});
  ps.defInt(kOfxPropVersion, {}, 0);
  ps.defString(kOfxPropVersionLabel, {""});
  ps.defString(kOfxPropPluginDescription, {""});
  ps.defString(kOfxImageEffectPropSupportedContexts, {}, 0);
  ps.defString(kOfxImageEffectPluginPropGrouping, {""});
  ps.defInt(kOfxImageEffectPluginPropSingleInstance, {0});
  ps.defString(kOfxImageEffectPluginRenderThreadSafety, {kOfxImageEffectRenderInstanceSafe});
  ps.defInt(kOfxImageEffectPluginPropHostFrameThreading, {1});
  ps.defPointer(kOfxImageEffectPluginPropOverlayInteractV1, {nullptr});
  ps.defInt(kOfxImageEffectPropSupportsMultiResolution, {1});
  ps.defInt(kOfxImageEffectPropSupportsTiles, {1});
  ps.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  ps.defString(kOfxImageEffectPropSupportedPixelDepths, {}, 0);
  ps.defInt("OfxImageEffectPluginPropFieldRenderTwiceAlways", {1});
  ps.defInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  ps.defInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  ps.defString("OfxImageEffectPropClipPreferencesSlaveParam", {}, 0);
  ps.defInt(kOfxImageEffectInstancePropSequentialRender, {0});
  ps.defInt(kOfxImageEffectPropRenderQualityDraft, {0});
  ps.defString(kOfxPluginPropFilePath, {filePath});
  ps.defString("OfxImageEffectPropOpenGLRenderSupported", {"false"});
  ps.defString("OfxOpenGLPropPixelDepth", {}, 0);
  ps.defString(kNatronChannelSelector, {kOfxImageComponentRGBA});
  ps.defInt(kNatronHostMasking, {0});
  ps.defInt(kNatronHostMixing, {0});
}

// What an instance adds to its descriptor's properties.
void declareEffectInstance(PS& ps, const std::string& context, double w, double h, double first,
                           double last) {
  ps.kind = "instance";
  ps.defString(kOfxPropType, {kOfxTypeImageEffectInstance});
  ps.defString(kOfxImageEffectPropContext, {context});
  ps.defPointer(kOfxPropInstanceData, {nullptr});
  ps.defPointer("OfxImageEffectPropPluginHandle", {nullptr});
  ps.defDouble("OfxImageEffectPropProjectSize", {w, h});
  ps.defDouble("OfxImageEffectPropProjectOffset", {0.0, 0.0});
  ps.defDouble("OfxImageEffectPropProjectExtent", {w, h});
  ps.defDouble(kOfxImageEffectPropProjectPixelAspectRatio, {1.0});
  ps.defDouble("OfxImageEffectInstancePropEffectDuration", {last - first + 1});
  ps.defDouble("OfxImageEffectPropFrameRate", {24.0});
  ps.defInt(kOfxPropIsInteractive, {0});
}

void declareClipDescriptor(PS& ps, const std::string& name) {
  ps.kind = "clip";
  ps.defString(kOfxPropType, {kOfxTypeClip});
  ps.defString(kOfxPropName, {name});
  ps.defString(kOfxPropLabel, {""});
  ps.defInt(kOfxParamPropSecret, {0});   // Natron extension
  ps.defString(kOfxParamPropHint, {""});  // Natron extension
  ps.defString(kOfxPropShortLabel, {""});
  ps.defString(kOfxPropLongLabel, {""});
  ps.defString(kOfxImageEffectPropSupportedComponents, {}, 0);
  ps.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  ps.defInt(kOfxImageClipPropOptional, {0});
  ps.defInt(kOfxImageClipPropIsMask, {0});
  ps.defString("OfxImageClipPropFieldExtraction", {"OfxImageFieldDoubled"});
  ps.defInt(kOfxImageEffectPropSupportsTiles, {1});
}

// What a clip instance adds to its descriptor's properties: the state of an unconnected input
// (as a clip is at CreateInstance); connectClip and the clip preferences fill them in.
void declareClipInstance(PS& ps, double first, double last) {
  ps.defString(kOfxImageEffectPropPixelDepth, {kOfxBitDepthNone});
  ps.defString(kOfxImageEffectPropComponents, {kOfxImageComponentNone});
  ps.defString(kOfxImageClipPropUnmappedPixelDepth, {kOfxBitDepthNone});
  ps.defString(kOfxImageClipPropUnmappedComponents, {kOfxImageComponentNone});
  ps.defString(kOfxImageEffectPropPreMultiplication, {kOfxImageOpaque});
  ps.defDouble(kOfxImagePropPixelAspectRatio, {1.0});
  ps.defDouble("OfxImageEffectPropFrameRate", {24.0});
  ps.defDouble(kOfxImageEffectPropFrameRange, {first, last});
  ps.defString("OfxImageClipPropFieldOrder", {kOfxFieldNone});
  ps.defInt(kOfxImageClipPropConnected, {0});
  ps.defDouble("OfxImageEffectPropUnmappedFrameRange", {first, last});
  ps.defDouble("OfxImageEffectPropUnmappedFrameRate", {24.0});
  ps.defInt("OfxImageClipPropContinuousSamples", {0});
}

void fillImageProps(PS& ps, void* data, const OfxRectI& bounds, const OfxRectI& rod, int rowBytes,
                    const std::string& depth, const std::string& comps, const std::string& premult,
                    double scale) {
  ps.kind = "image";
  ps.defString(kOfxPropType, {kOfxTypeImage});
  ps.defPointer(kOfxImagePropData, {data});
  ps.defInt(kOfxImagePropBounds, {bounds.x1, bounds.y1, bounds.x2, bounds.y2});
  ps.defInt(kOfxImagePropRegionOfDefinition, {rod.x1, rod.y1, rod.x2, rod.y2});
  ps.defInt(kOfxImagePropRowBytes, {rowBytes});
  ps.defString(kOfxImageEffectPropPixelDepth, {depth});
  ps.defString(kOfxImageEffectPropComponents, {comps});
  ps.defString(kOfxImageEffectPropPreMultiplication, {premult});
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
  c->name = name; c->effect = fx;
  declareClipDescriptor(c->props, name);
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
// An input's RoD in pixels at render scale `sc`: the origin scaled down, the size as scaleFrame's.
OfxRectI scaledRod(const OfxRectI& full, double sc) {
  if (sc == 1.0) return full;
  const int x1 = int(std::floor(full.x1 * sc)), y1 = int(std::floor(full.y1 * sc));
  return OfxRectI{x1, y1, x1 + int(std::ceil((full.x2 - full.x1) * sc)),
                  y1 + int(std::ceil((full.y2 - full.y1) * sc))};
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
  // The clip's current depth, components and premultiplication (after the clip preferences).
  const std::string depth = clip->props.getString(kOfxImageEffectPropPixelDepth);
  const std::string comps = clip->props.getString(kOfxImageEffectPropComponents);
  const std::string premult = clip->props.getString(kOfxImageEffectPropPreMultiplication);
  const int nc = componentCount(comps), bpc = bytesPerComponent(depth);
  if (nc == 0) return kOfxStatFailed;  // no components (an unconnected clip)
  auto img = std::make_unique<HostImage>();
  if (clip->name == kOfxImageEffectOutputClipName) {
    if (!tCtx || !ctx.outData) return kOfxStatFailed;  // output only exists during render
    fillImageProps(img->props, ctx.outData, ctx.window, ctx.rod, ctx.outRowBytes, depth, comps,
                   premult, ctx.scale);
    *out = registerImage(std::move(img));
    return kOfxStatOK;
  }
  if (!clip->source) return kOfxStatFailed;  // not connected
  Frame local;
  const Frame* fr = nullptr;
  if (ctx.scaled) {
    auto sc = ctx.scaled->find(clip->name);
    if (sc != ctx.scaled->end()) fr = &sc->second;
  }
  if (!fr) { local = scaleFrame(*clip->source, ctx.scale); fr = &local; }
  const OfxRectI rod = scaledRod(clip->rod, ctx.scale);
  OfxRectI bounds = tCtx ? intersect(ctx.window, rod) : rod;
  if (region) {  // honour an explicit region (canonical -> pixel at this scale)
    OfxRectI r{int(std::floor(region->x1 * ctx.scale)), int(std::floor(region->y1 * ctx.scale)),
               int(std::ceil(region->x2 * ctx.scale)), int(std::ceil(region->y2 * ctx.scale))};
    bounds = intersect(r, rod);
  }
  Layout l = layoutFor(bounds, nc * bpc, s.negativeRowBytes);
  img->buf.assign(l.bytes, 0);
  unsigned char* data = img->buf.data() + l.bottomOffset;
  // Frames hold the --depth's native units; the clip's depth may differ (clip preferences).
  const float one = depthMax(s.depth), unit = depthMax(depth) / one;
  for (int y = bounds.y1; y < bounds.y2; ++y) {
    const int srcRow = rod.y2 - 1 - y;  // frames are top-down
    unsigned char* row = data + static_cast<long>(y - bounds.y1) * l.rowBytes;
    for (int x = bounds.x1; x < bounds.x2; ++x)
      for (int ch = 0; ch < nc; ++ch) {
        const float v = convertedChannel(*fr, clip->frameComps, x - rod.x1, srcRow, comps, ch, one);
        storeValue(row + (x - bounds.x1) * nc * bpc + ch * bpc, depth, v * unit);
      }
  }
  (void)time;  // the input is the same image at every time
  fillImageProps(img->props, data, bounds, rod, l.rowBytes, depth, comps, premult, ctx.scale);
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
// Canonical coordinates = full-resolution pixels (PAR 1). The Output's RoD is the Source's (the
// default for filter and general contexts: the Mask is optional); an unconnected input has an
// empty RoD.
OfxStatus clipGetRegionOfDefinition(OfxImageClipHandle clip, OfxTime, OfxRectD* r) {
  if (!clip || !r || !clip->effect || !clip->effect->session) return kOfxStatErrBadHandle;
  OfxRectI rod = clip->rod;
  if (clip->name == kOfxImageEffectOutputClipName) {
    auto it = clip->effect->clips.find(kOfxImageEffectSimpleSourceClipName);
    rod = it != clip->effect->clips.end() ? it->second->rod : OfxRectI{0, 0, 0, 0};
  }
  *r = OfxRectD{double(rod.x1), double(rod.y1), double(rod.x2), double(rod.y2)};
  return kOfxStatOK;
}
// abort(): true after --abort-after K calls within one render, or for frame F once its render
// has run --abort-at F:MS milliseconds (as Natron aborts a render the user no longer needs).
int abortFn(OfxImageEffectHandle fx) {
  if (!fx || !fx->session) return 0;
  ++fx->abortCallsTotal;
  if (!tCtx) return 0;
  const Session& s = *fx->session;
  long n = ++tCtx->abortCalls;
  bool stop = s.abortAfter >= 0 && n > s.abortAfter;
  if (s.abortAtMs >= 0 && tCtx->time == s.abortFrame &&
      std::chrono::steady_clock::now() - tCtx->started >= std::chrono::milliseconds(s.abortAtMs))
    stop = true;
  if (stop) tCtx->aborted = true;
  return stop ? 1 : 0;
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
  h.kind = "host";
  // the host descriptor (OFX core)
  h.defInt(kOfxPropAPIVersion, {1, 4}, 0);
  h.defString(kOfxPropType, {kOfxTypeImageEffectHost});
  h.defString(kOfxPropName, {"org.faceplate.testhost"});
  h.defString(kOfxPropLabel, {"Faceplate OFX test host"});
  h.defInt(kOfxPropVersion, {0, 1, 0}, 0);
  h.defString(kOfxPropVersionLabel, {"0.1.0"});
  // the image effect host
  h.defInt(kOfxImageEffectHostPropIsBackground, {1});
  h.defInt("OfxImageEffectPropSupportsOverlays", {0});
  h.defInt(kOfxImageEffectPropSupportsMultiResolution, {1});
  h.defInt(kOfxImageEffectPropSupportsTiles, {1});
  h.defInt(kOfxImageEffectPropTemporalClipAccess, {0});
  h.defString(kOfxImageEffectPropSupportedComponents,
              {kOfxImageComponentRGBA, kOfxImageComponentRGB, kOfxImageComponentAlpha}, 0);
  h.defString(kOfxImageEffectPropSupportedPixelDepths,
              {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthFloat}, 0);
  h.defString(kOfxImageEffectPropSupportedContexts,
              {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral}, 0);
  h.defInt(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
  h.defInt(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
  h.defInt("OfxImageEffectPropSetableFrameRate", {0});
  h.defInt("OfxImageEffectPropSetableFielding", {0});
  h.defInt("OfxParamHostPropSupportsCustomInteract", {0});
  h.defInt("OfxParamHostPropSupportsStringAnimation", {0});
  h.defInt("OfxParamHostPropSupportsChoiceAnimation", {0});
  h.defInt("OfxParamHostPropSupportsBooleanAnimation", {0});
  h.defInt("OfxParamHostPropSupportsCustomAnimation", {0});
  h.defPointer("OfxPropHostOSHandle", {nullptr});
  h.defInt("OfxParamHostPropSupportsParametricAnimation", {0});
  h.defInt("OfxParamHostPropMaxParameters", {-1});
  h.defInt("OfxParamHostPropMaxPages", {0});
  h.defInt("OfxParamHostPropPageRowColumnCount", {0, 0});
  h.defInt(kOfxImageEffectInstancePropSequentialRender, {2});
  h.defString("OfxImageEffectPropOpenGLRenderSupported", {"false"});
  h.defInt(kOfxImageEffectPropRenderQualityDraft, {0});
  h.defString(kOfxImageEffectHostPropNativeOrigin, {kOfxHostNativeOriginBottomLeft}, 0);
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

void initDescriptorProps(PS& ps, const Binary& b) { declareEffectDescriptor(ps, b.path); }

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
  // The page order as Natron lays pages out: kOfxPluginPropParamPageOrder if the host knew it
  // (HostSupport does not: it is unknown here), else the order in which pages were defined.
  const PropValue* order = d.props.find(kOfxPluginPropParamPageOrder);
  std::vector<std::string> pages;
  for (auto& p : d.params.params) if (p->type == kOfxParamTypePage) pages.push_back(p->name);
  PropValue pv; pv.type = PType::String; pv.s = pages;
  o += "],\"page_order\":" + (order ? jvalue(*order, true) : jvalue(pv, true));
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
using Clock = std::chrono::steady_clock;

struct ChildProc { long pid; std::string name; };

// The live direct children of this process (started from any of its threads), from /proc: the
// workers a plugin started. Sorted by pid.
std::vector<ChildProc> childProcesses() {
  std::vector<ChildProc> out;
  const long self = static_cast<long>(getpid());
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const size_t a = line.find('('), b = line.rfind(')');
    if (a == std::string::npos || b == std::string::npos || b < a || b + 2 > line.size()) continue;
    std::istringstream rest(line.substr(b + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == self && state != "Z") out.push_back({pid, line.substr(a + 1, b - a - 1)});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const ChildProc& x, const ChildProc& y) { return x.pid < y.pid; });
  return out;
}
std::string childrenJson(const std::vector<ChildProc>& v) {
  std::string o = "[";
  for (size_t k = 0; k < v.size(); ++k)
    o += std::string(k ? "," : "") + "{\"pid\":" + std::to_string(v[k].pid) + ",\"name\":" + jstr(v[k].name) + "}";
  return o + "]";
}
long threadId() { return static_cast<long>(::syscall(SYS_gettid)); }
double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct FrameResult {
  double time = 0;
  std::string status;
  int rc = 0;
  bool renderCalled = false;
  std::string identityClip;
  long abortCalls = 0;
  double ms = 0;
  double renderMs = 0;     // the plugin's Render action, wall time
  double hostImageMs = 0;  // of which spent in this host's clipGetImage
  double startMs = 0, endMs = 0;  // since the frames began
  long thread = 0;                // the render thread (it exits after this frame)
  int rodStatus = -1, beginStatus = -1, endStatus = -1;
  bool sequence = false;          // Begin/EndSequenceRender came around it, range [t, t]
  std::vector<ChildProc> children;  // this process's children right after the frame
  Frame out;                        // in the --depth's native units
};

struct RenderArgs {
  std::string bundle, plugin, context = "filter", input, output, mask;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::string> instanceChanged, instanceChangedDuringRender;
  std::vector<std::string> preloadLocal;  // --preload-local: dlopened RTLD_LOCAL first
  int threads = 1;
  int cancelProgressAfter = -1;
  int staggerMs = 0;
};

// ---- action arguments: closed sets with exactly HostSupport's properties ----
void renderArgs(PS& in, double t, const OfxRectI& w, double s) {
  in.kind = "inArgs";
  in.defDouble(kOfxPropTime, {t});
  in.defString(kOfxImageEffectPropFieldToRender, {kOfxFieldNone});
  in.defInt(kOfxImageEffectPropRenderWindow, {w.x1, w.y1, w.x2, w.y2});
  in.defDouble(kOfxImageEffectPropRenderScale, {s, s});
  in.defInt(kOfxImageEffectPropSequentialRenderStatus, {0});
  in.defInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
  in.defInt("OfxImageEffectPropOpenGLEnabled", {0});
  in.defInt(kOfxImageEffectPropRenderQualityDraft, {0});
}
void identityArgs(PS& in, PS& out, double t, const OfxRectI& w, double s) {
  in.kind = "inArgs"; out.kind = "outArgs";
  in.defDouble(kOfxPropTime, {t});
  in.defString(kOfxImageEffectPropFieldToRender, {kOfxFieldNone});
  in.defInt(kOfxImageEffectPropRenderWindow, {w.x1, w.y1, w.x2, w.y2});
  in.defDouble(kOfxImageEffectPropRenderScale, {s, s});
  out.defDouble(kOfxPropTime, {t});
  out.defString(kOfxPropName, {""});
}
void rodArgs(PS& in, PS& out, double t, double s, const OfxRectI& dflt) {
  in.kind = "inArgs"; out.kind = "outArgs";
  in.defDouble(kOfxPropTime, {t});
  in.defDouble(kOfxImageEffectPropRenderScale, {s, s});
  out.defDouble(kOfxImageEffectPropRegionOfDefinition,
                {double(dflt.x1), double(dflt.y1), double(dflt.x2), double(dflt.y2)});
}
void sequenceArgs(PS& in, double t0, double t1, double s) {
  in.kind = "inArgs";
  in.defDouble(kOfxImageEffectPropFrameRange, {t0, t1});
  in.defDouble(kOfxImageEffectPropFrameStep, {1.0});
  in.defInt(kOfxPropIsInteractive, {0});
  in.defDouble(kOfxImageEffectPropRenderScale, {s, s});
  in.defInt(kOfxImageEffectPropSequentialRenderStatus, {0});
  in.defInt(kOfxImageEffectPropInteractiveRenderStatus, {0});
  in.defInt("OfxImageEffectPropOpenGLEnabled", {0});
  in.defInt(kOfxImageEffectPropRenderQualityDraft, {0});
}
bool okOrDefault(OfxStatus st) { return st == kOfxStatOK || st == kOfxStatReplyDefault; }

// Begin/InstanceChanged/EndInstanceChanged for one change (a param or a clip), on this thread.
OfxStatus instanceChanged(OfxPlugin* p, OfxImageEffectStruct* inst, const char* type,
                          const std::string& name, double t) {
  PS in; in.kind = "inArgs";
  in.defString(kOfxPropType, {type});
  in.defString(kOfxPropName, {name});
  in.defString(kOfxPropChangeReason, {kOfxChangeUserEdited});
  in.defDouble(kOfxPropTime, {t});
  in.defDouble(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  PS bin; bin.kind = "inArgs";
  bin.defString(kOfxPropChangeReason, {kOfxChangeUserEdited});
  callAction(p, kOfxActionBeginInstanceChanged, inst, &bin, nullptr);
  OfxStatus st = callAction(p, kOfxActionInstanceChanged, inst, &in, nullptr);
  callAction(p, kOfxActionEndInstanceChanged, inst, &bin, nullptr);
  return st;
}

// Render threads now inside renderOne (InstanceChanged during render reports it).
std::atomic<int> gFramesInFlight{0};
std::atomic<int> gFramesStarted{0};

// One frame, on the calling thread (a fresh thread per frame, as Natron's render threads end
// after each render): GetRegionOfDefinition, IsIdentity, then — unless identity —
// BeginSequenceRender([t, t]), Render, EndSequenceRender([t, t]), as Natron does for every frame
// of a non-writer effect.
FrameResult renderOne(OfxPlugin* p, OfxImageEffectStruct* inst, Session& s, double t,
                      double scale, Clock::time_point t0) {
  ++gFramesInFlight;
  ++gFramesStarted;
  FrameResult r;
  r.time = t;
  r.thread = threadId();
  r.startMs = msSince(t0);
  const auto tStart = Clock::now();
  RenderCtx ctx;
  ctx.time = t; ctx.scale = scale; ctx.scaled = &s.scaled; ctx.started = tStart;
  const OfxImageClipStruct& outClip = *inst->clips.at(kOfxImageEffectOutputClipName);
  const OfxImageClipStruct& srcClip = *inst->clips.at(kOfxImageEffectSimpleSourceClipName);
  ctx.rod = scaledRod(srcClip.rod, scale);  // the Output's RoD is the Source's
  ctx.window = ctx.rod;
  if (s.hasWindow)
    ctx.window = intersect(ctx.rod, OfxRectI{int(std::floor(s.windowFull.x1 * scale)),
                                             int(std::floor(s.windowFull.y1 * scale)),
                                             int(std::ceil(s.windowFull.x2 * scale)),
                                             int(std::ceil(s.windowFull.y2 * scale))});
  const std::string depth = outClip.props.getString(kOfxImageEffectPropPixelDepth);
  const std::string comps = outClip.props.getString(kOfxImageEffectPropComponents);
  const int nc = componentCount(comps), bpc = bytesPerComponent(depth);
  const float unit = depthMax(depth) / depthMax(s.depth);  // output units per --depth unit
  const int W = ctx.rod.x2 - ctx.rod.x1, H = ctx.rod.y2 - ctx.rod.y1;
  r.out.w = W; r.out.h = H; r.out.c = nc;
  r.out.px.assign(static_cast<size_t>(W) * H * std::max(nc, 1), 0.f);
  tCtx = &ctx;

  PS rin, rout;
  rodArgs(rin, rout, t, scale, ctx.rod);
  r.rodStatus = callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst, &rin, &rout);
  PS in, out;
  identityArgs(in, out, t, ctx.window, scale);
  OfxStatus ist = okOrDefault(r.rodStatus)
                      ? callAction(p, kOfxImageEffectActionIsIdentity, inst, &in, &out)
                      : r.rodStatus;
  if (ist == kOfxStatOK) {
    r.identityClip = out.getString(kOfxPropName);
    auto it = inst->clips.find(r.identityClip);
    auto sc = s.scaled.find(r.identityClip);
    if (it == inst->clips.end() || sc == s.scaled.end()) { r.status = "failed"; r.rc = kOfxStatErrValue; }
    else {
      const Frame& f = sc->second;
      const OfxRectI irod = scaledRod(it->second->rod, scale);
      unsigned char tmp[4];
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          const int fx = x + ctx.rod.x1 - irod.x1, fy = y + irod.y2 - ctx.rod.y2;
          if (fx < 0 || fy < 0 || fx >= f.w || fy >= f.h) continue;
          for (int ch = 0; ch < nc; ++ch) {
            float v = convertedChannel(f, it->second->frameComps, fx, fy, comps, ch, depthMax(s.depth));
            storeValue(tmp, depth, v * unit);
            r.out.px[(static_cast<size_t>(y) * W + x) * nc + ch] = loadValue(tmp, depth) / unit;
          }
        }
      r.status = "identity";
    }
  } else if (ist != kOfxStatReplyDefault) {
    r.status = "failed"; r.rc = ist;
  } else {
    PS bin;
    sequenceArgs(bin, t, t, scale);
    r.sequence = true;
    r.beginStatus = callAction(p, kOfxImageEffectActionBeginSequenceRender, inst, &bin, nullptr);
    Layout l = layoutFor(ctx.window, nc * bpc, s.negativeRowBytes);
    ctx.out.assign(l.bytes, 0);
    ctx.outData = ctx.out.data() + l.bottomOffset;
    ctx.outRowBytes = l.rowBytes;
    PS ren;
    renderArgs(ren, t, ctx.window, scale);
    r.renderCalled = true;
    const auto t_render = Clock::now();
    OfxStatus st = callAction(p, kOfxImageEffectActionRender, inst, &ren, nullptr);
    r.renderMs = msSince(t_render);
    r.hostImageMs = static_cast<double>(ctx.imageNs.load()) / 1e6;
    r.endStatus = callAction(p, kOfxImageEffectActionEndSequenceRender, inst, &bin, nullptr);
    r.rc = st;
    r.status = st != kOfxStatOK ? "failed" : (ctx.aborted ? "aborted" : "ok");
    for (int y = ctx.window.y1; y < ctx.window.y2; ++y) {
      const unsigned char* row = ctx.outData + static_cast<long>(y - ctx.window.y1) * ctx.outRowBytes;
      const int ty = ctx.rod.y2 - 1 - y;
      for (int x = ctx.window.x1; x < ctx.window.x2; ++x)
        for (int ch = 0; ch < nc; ++ch)
          r.out.px[(static_cast<size_t>(ty) * W + (x - ctx.rod.x1)) * nc + ch] =
              loadValue(row + ((x - ctx.window.x1) * nc + ch) * bpc, depth) / unit;
    }
  }
  tCtx = nullptr;
  r.abortCalls = ctx.abortCalls.load();
  r.children = childProcesses();
  r.ms = msSince(tStart);
  r.endMs = msSince(t0);
  --gFramesInFlight;
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

// ---- clip preferences (HostSupport's defaults, then the plugin's answer applied) ----
bool chromatic(const std::string& c) {
  return c == kOfxImageComponentRGBA || c == kOfxImageComponentRGB || c == kOfxImageComponentAlpha;
}
bool clipSupports(const OfxImageClipStruct& c, const std::string& comps) {
  for (auto& k : c.props.getStrings(kOfxImageEffectPropSupportedComponents)) if (k == comps) return true;
  return false;
}
// The components the clip takes for `s` (HostSupport's rule; RGB also falls back to RGBA).
std::string findSupportedComp(const OfxImageClipStruct& c, const std::string& s) {
  if (clipSupports(c, s) || !chromatic(s)) return s;
  const std::vector<std::string> order =
      s == kOfxImageComponentRGBA ? std::vector<std::string>{kOfxImageComponentRGB, kOfxImageComponentAlpha}
    : s == kOfxImageComponentAlpha ? std::vector<std::string>{kOfxImageComponentRGBA, kOfxImageComponentRGB}
    : std::vector<std::string>{kOfxImageComponentRGBA};
  for (auto& k : order) if (clipSupports(c, k)) return k;
  auto all = c.props.getStrings(kOfxImageEffectPropSupportedComponents);
  return all.size() == 1 ? all[0] : std::string(kOfxImageComponentNone);
}
std::string mostChromatic(const std::string& a, const std::string& b) {
  if (a == kOfxImageComponentNone) return b;
  if (a == kOfxImageComponentRGBA || b == kOfxImageComponentRGBA) return kOfxImageComponentRGBA;
  if (a == kOfxImageComponentRGB || b == kOfxImageComponentRGB) return kOfxImageComponentRGB;
  return a;
}
int depthRank(const std::string& d) {
  return d == kOfxBitDepthByte ? 1 : d == kOfxBitDepthShort ? 2 : d == kOfxBitDepthFloat ? 4 : 0;
}
std::string bestSupportedDepth(const OfxImageEffectStruct& fx, const std::string& d) {
  auto ok = [&](const std::string& x) {
    for (auto& k : fx.props.getStrings(kOfxImageEffectPropSupportedPixelDepths)) if (k == x) return true;
    return false;
  };
  if (d == kOfxBitDepthNone || ok(d)) return d;
  std::vector<std::string> order =
      d == kOfxBitDepthFloat ? std::vector<std::string>{kOfxBitDepthShort, kOfxBitDepthByte}
    : d == kOfxBitDepthShort ? std::vector<std::string>{kOfxBitDepthFloat, kOfxBitDepthByte}
    : std::vector<std::string>{kOfxBitDepthShort, kOfxBitDepthFloat};
  for (auto& k : order) if (ok(k)) return k;
  return kOfxBitDepthNone;
}

// The out-args of GetClipPreferences filled with the host's defaults (HostSupport's
// setDefaultClipPreferences): non-optional inputs keep their own components; the Output (and
// optional inputs) get the "most chromatic" components of the connected inputs that are not
// masks, in the deepest depth; the Output is premultiplied when an RGBA input is, else when it
// has alpha, opaque without input.
void defaultClipPreferences(OfxImageEffectStruct& inst, PS& prefs) {
  prefs.kind = "outArgs";
  std::string most = kOfxImageComponentNone, deepest = kOfxBitDepthNone, premult;
  bool any = false;
  for (auto& name : inst.clipOrder) {
    OfxImageClipStruct& c = *inst.clips[name];
    if (name == kOfxImageEffectOutputClipName || c.props.getInt(kOfxImageClipPropIsMask)) continue;
    const bool connected = c.props.getInt(kOfxImageClipPropConnected) != 0;
    const std::string raw = findSupportedComp(c, c.props.getString(kOfxImageClipPropUnmappedComponents));
    if (!chromatic(raw)) continue;
    if (raw == kOfxImageComponentRGBA && (connected || premult.empty())) {
      const std::string pm = c.props.getString(kOfxImageEffectPropPreMultiplication);
      if (pm == kOfxImageAlphaPremultiplied) premult = pm;
      else if (pm == kOfxImageAlphaUnPremultiplied && premult != kOfxImageAlphaPremultiplied) premult = pm;
    }
    if (!connected) continue;
    any = true;
    const std::string d = c.props.getString(kOfxImageClipPropUnmappedPixelDepth);
    if (depthRank(d) > depthRank(deepest)) deepest = d;
    if ((most == kOfxImageComponentAlpha) != (raw == kOfxImageComponentAlpha) && most != kOfxImageComponentNone)
      most = kOfxImageComponentRGBA;
    most = mostChromatic(most, raw);
  }
  if (!any) { most = kOfxImageComponentRGBA; deepest = kOfxBitDepthFloat; }
  deepest = bestSupportedDepth(inst, deepest);
  for (auto& name : inst.clipOrder) {
    OfxImageClipStruct& c = *inst.clips[name];
    const bool isOutput = name == kOfxImageEffectOutputClipName;
    const bool connected = c.props.getInt(kOfxImageClipPropConnected) != 0;
    std::string comp, depth;
    if (isOutput || (c.props.getInt(kOfxImageClipPropOptional) && connected)) {
      comp = findSupportedComp(c, most);
      depth = deepest;
      if (isOutput && premult.empty() &&
          (comp == kOfxImageComponentRGBA || comp == kOfxImageComponentAlpha))
        premult = kOfxImageAlphaPremultiplied;
    } else if (connected) {
      comp = findSupportedComp(c, c.props.getString(kOfxImageClipPropUnmappedComponents));
      depth = deepest;
    } else {  // an unconnected input keeps "none"
      comp = kOfxImageComponentNone;
      depth = kOfxBitDepthNone;
    }
    prefs.defString(kOfxImageClipPropComponentsPrefix + name, {comp}, 0);
    prefs.defString(kOfxImageClipPropDepthPrefix + name, {depth});
    prefs.defDouble(kOfxImageClipPropPARPrefix + name, {1.0});
  }
  prefs.defDouble("OfxImageEffectPropFrameRate", {24.0});
  prefs.defString(kOfxImageEffectPropPreMultiplication, {premult.empty() ? kOfxImageOpaque : premult});
  prefs.defString("OfxImageClipPropFieldOrder", {kOfxFieldNone});
  prefs.defInt("OfxImageClipPropContinuousSamples", {0});
  prefs.defInt(kOfxImageEffectFrameVarying, {0});
}

// Applies what GetClipPreferences returned to the clips (components, depth, the Output's
// premultiplication): the images the plugin then gets have exactly these. "" or an error.
std::string applyClipPreferences(OfxImageEffectStruct& inst, const PS& prefs) {
  for (auto& name : inst.clipOrder) {
    OfxImageClipStruct& c = *inst.clips[name];
    const std::string comp = prefs.getString(kOfxImageClipPropComponentsPrefix + name);
    const std::string depth = prefs.getString(kOfxImageClipPropDepthPrefix + name);
    const double par = prefs.getDouble(kOfxImageClipPropPARPrefix + name, 1.0);
    const bool live = name == kOfxImageEffectOutputClipName || c.props.getInt(kOfxImageClipPropConnected);
    if (!live) continue;
    if (!clipSupports(c, comp))
      return "clip " + name + ": components '" + comp + "' are not among its supported components";
    if (depth != bestSupportedDepth(inst, depth) || depthRank(depth) == 0)
      return "clip " + name + ": depth '" + depth + "' is not supported by the plugin";
    if (par != 1.0) return "clip " + name + ": pixel aspect ratio " + jnum(par) + " (this host has only 1)";
    c.props.setString(kOfxImageEffectPropComponents, comp);
    c.props.setString(kOfxImageEffectPropPixelDepth, depth);
  }
  inst.clips[kOfxImageEffectOutputClipName]->props.setString(
      kOfxImageEffectPropPreMultiplication, prefs.getString(kOfxImageEffectPropPreMultiplication));
  return "";
}

// Connects an input: its state before the clip preferences (what it "unmaps" to).
void connectClip(OfxImageClipStruct& c, const Frame* f, const std::string& comps,
                 const OfxRectI& rod, const std::string& depth) {
  c.source = f;
  c.frameComps = comps;
  c.rod = rod;
  c.props.setInt(kOfxImageClipPropConnected, 1);
  c.props.setString(kOfxImageClipPropUnmappedComponents, comps);
  c.props.setString(kOfxImageClipPropUnmappedPixelDepth, depth);
  c.props.setString(kOfxImageEffectPropComponents, findSupportedComp(c, comps));
  c.props.setString(kOfxImageEffectPropPixelDepth, depth);
  c.props.setString(kOfxImageEffectPropPreMultiplication,
                    comps == kOfxImageComponentRGB ? kOfxImageOpaque : kOfxImageAlphaPremultiplied);
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
  const OfxRectI srcRod{0, 0, s.source.w, s.source.h};
  if (s.hasMaskRod && !s.hasMask) return fail("--mask-rod needs --mask", 1);
  if (!s.hasMaskRod) s.maskRod = srcRod;
  if (s.hasMask && (s.mask.c != 1 || s.mask.w != s.maskRod.x2 - s.maskRod.x1 ||
                    s.mask.h != s.maskRod.y2 - s.maskRod.y1))
    return fail(s.hasMaskRod ? "mask must be 1 channel and the size of --mask-rod"
                             : "mask must be 1 channel and the size of the input", 1);
  gRec.cancelProgressAfter = a.cancelProgressAfter;

  for (const std::string& lib : a.preloadLocal)  // as a host (or another plug-in) that has
    if (!dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL))  // loaded a library privately
      return fail("--preload-local " + lib + ": " + dlerror(), 1);
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

  // ---- instance, created with every input unconnected (as a node is created in Natron)
  auto inst = std::make_unique<OfxImageEffectStruct>();
  inst->isInstance = true; inst->session = &s; inst->time = s.first;
  inst->props.props = desc->props.props;
  declareEffectInstance(inst->props, ctxName, double(s.source.w), double(s.source.h), s.first, s.last);
  for (auto& dp : desc->params.params) {
    auto ip = std::make_unique<OfxParamStruct>();
    instantiateParam(*ip, *dp);
    inst->params.params.push_back(std::move(ip));
  }
  for (auto& name : desc->clipOrder) {
    auto c = std::make_unique<OfxImageClipStruct>();
    c->name = name; c->effect = inst.get();
    c->props.props = desc->clips[name]->props.props;
    c->props.kind = "clip";
    declareClipInstance(c->props, s.first, s.last);
    inst->clipOrder.push_back(name);
    inst->clips[name] = std::move(c);
  }
  if (!inst->clips.count(kOfxImageEffectSimpleSourceClipName) ||
      !inst->clips.count(kOfxImageEffectOutputClipName))
    return fail("the plugin has no Source or no Output clip in context " + ctxName, 2);
  OfxImageClipStruct& outClip = *inst->clips[kOfxImageEffectOutputClipName];
  outClip.props.setInt(kOfxImageClipPropConnected, 1);  // the Output always is
  outClip.props.setString(kOfxImageEffectPropComponents, kOfxImageComponentRGBA);  // until prefs
  outClip.props.setString(kOfxImageEffectPropPixelDepth, s.depth);
  OfxStatus cs = callAction(p, kOfxActionCreateInstance, inst.get(), nullptr, nullptr);
  o += "\"plugin\":" + jstr(a.plugin) + ",\"context\":" + jstr(ctxName) +
       ",\"depth\":" + jstr(s.depth) + ",\"components\":" + jstr(s.comps) +
       ",\"create_status\":" + std::to_string(cs);
  int exitCode = 0;
  if (!okOrDefault(cs)) exitCode = 3;

  // ---- render-scale probe, right after CreateInstance, inputs still unconnected (Natron):
  // GetRegionOfDefinition at scale 1, then at 0.5. Fails at 0.5: the effect is rendered at
  // scale 1 (and the result downscaled). Fails at 1: undecided until the first render.
  std::string support = "maybe";
  OfxStatus probe1 = -1, probeHalf = -1;
  if (exitCode == 0) {
    PS in1, out1;
    rodArgs(in1, out1, s.first, 1.0, srcRod);
    probe1 = callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst.get(), &in1, &out1);
    if (okOrDefault(probe1)) {
      PS in2, out2;
      rodArgs(in2, out2, s.first, 0.5, OfxRectI{0, 0, (srcRod.x2 + 1) / 2, (srcRod.y2 + 1) / 2});
      probeHalf = callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst.get(), &in2, &out2);
      support = okOrDefault(probeHalf) ? "yes" : "no";
    }
  }
  o += ",\"probe\":{\"time\":" + jnum(s.first) + ",\"scale_one_status\":" + std::to_string(probe1) +
       ",\"half_status\":" + std::to_string(probeHalf) + "}";

  // ---- inputs connected (InstanceChanged for each clip, as Natron reports a connection)
  std::vector<std::string> connected;
  if (exitCode == 0) {
    connectClip(*inst->clips[kOfxImageEffectSimpleSourceClipName], &s.source, s.comps, srcRod, s.depth);
    if (s.hasSourceRange)  // e.g. a generator's or a still's: unbounded, or beyond the timeline
      inst->clips[kOfxImageEffectSimpleSourceClipName]->props.defDouble(
          kOfxImageEffectPropFrameRange, {s.sourceFirst, s.sourceLast});
    connected.push_back(kOfxImageEffectSimpleSourceClipName);
    if (s.hasMask) {
      OfxImageClipStruct* mc = nullptr;
      for (auto& name : inst->clipOrder)
        if (inst->clips[name]->props.getInt(kOfxImageClipPropIsMask)) { mc = inst->clips[name].get(); break; }
      const bool sameRod = s.maskRod.x1 == 0 && s.maskRod.y1 == 0 && s.maskRod.x2 == srcRod.x2 &&
                           s.maskRod.y2 == srcRod.y2;
      if (!sameRod && !desc->props.getInt(kOfxImageEffectPropSupportsMultiResolution))
        return fail("the plugin does not support multi-resolution: a Mask whose RoD differs from "
                    "the Source's is refused (as Natron refuses the connection)", 3);
      if (mc) {
        connectClip(*mc, &s.mask, kOfxImageComponentAlpha, s.maskRod, s.depth);
        connected.push_back(mc->name);
      }
    }
    for (auto& name : connected) instanceChanged(p, inst.get(), kOfxTypeClip, name, s.first);
  }
  o += ",\"connected\":[";
  for (size_t k = 0; k < connected.size(); ++k) o += (k ? "," : "") + jstr(connected[k]);
  o += "]";

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
    OfxStatus st = instanceChanged(p, inst.get(), kOfxTypeParameter, a.instanceChanged[k], s.first);
    o += std::string(k ? "," : "") + "{\"name\":" + jstr(a.instanceChanged[k]) +
         ",\"status\":" + std::to_string(st) + "}";
  }
  o += "]";

  // ---- clip preferences, applied to the clips and their images
  PS prefs;
  defaultClipPreferences(*inst, prefs);
  OfxStatus gs = exitCode ? kOfxStatFailed
                          : callAction(p, kOfxImageEffectActionGetClipPreferences, inst.get(), nullptr, &prefs);
  o += ",\"clip_preferences_status\":" + std::to_string(gs) + ",\"clip_preferences\":" + jprops(prefs);
  if (exitCode == 0 && !okOrDefault(gs)) exitCode = 3;
  if (exitCode == 0) {
    const std::string err = applyClipPreferences(*inst, prefs);
    if (!err.empty()) {
      o += ",\"clip_preferences_error\":" + jstr(err);
      exitCode = 3;
    }
  }
  o += ",\"clips\":{";
  for (size_t k = 0; k < inst->clipOrder.size(); ++k) {
    const PS& cp = inst->clips[inst->clipOrder[k]]->props;
    o += (k ? "," : "") + jstr(inst->clipOrder[k]) +
         ":{\"connected\":" + std::to_string(cp.getInt(kOfxImageClipPropConnected)) +
         ",\"components\":" + jstr(cp.getString(kOfxImageEffectPropComponents)) +
         ",\"depth\":" + jstr(cp.getString(kOfxImageEffectPropPixelDepth)) +
         ",\"premultiplication\":" + jstr(cp.getString(kOfxImageEffectPropPreMultiplication)) + "}";
  }
  o += "}";

  // ---- the render scale used, and the RoD there (main thread)
  double used = s.scale;
  if (s.scale != 1.0 && support == "no") used = 1.0;
  OfxStatus rs = kOfxStatFailed;
  if (exitCode == 0) {
    PS rin, rout;
    rodArgs(rin, rout, s.first, used, scaledRod(srcRod, used));
    rs = callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst.get(), &rin, &rout);
    if (!okOrDefault(rs) && used != 1.0 && support == "maybe") {  // decided now, as Natron does
      PS rin1, rout1;
      rodArgs(rin1, rout1, s.first, 1.0, srcRod);
      rs = callAction(p, kOfxImageEffectActionGetRegionOfDefinition, inst.get(), &rin1, &rout1);
      if (okOrDefault(rs)) { used = 1.0; support = "no"; }
    }
  }
  o += ",\"rod_status\":" + std::to_string(rs) + ",\"render_scale\":" + jnum(s.scale) +
       ",\"render_scale_used\":" + jnum(used) + ",\"render_scale_support\":" + jstr(support);

  // ---- frames: each on a fresh thread that exits after it; up to --threads at once; with
  // --instance-changed-during-render, the main thread fires those while frames render.
  std::vector<FrameResult> results(s.last - s.first + 1);
  double wallMs = 0;
  std::string icDuring = "[";
  if (exitCode == 0) {
    for (auto& kv : inst->clips)
      if (kv.second->source) s.scaled[kv.first] = scaleFrame(*kv.second->source, used);
    const auto t0 = Clock::now();
    const int n = static_cast<int>(results.size()), T = std::max(1, a.threads);
    bool icPending = !a.instanceChangedDuringRender.empty();
    for (int k = 0; k < n; k += T) {
      const int m = std::min(T, n - k);
      const int startedBefore = gFramesStarted.load();
      std::atomic<int> done{0};
      std::vector<std::thread> wave;
      for (int j = 0; j < m; ++j)
        wave.emplace_back([&, j, k] {
          if (a.staggerMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.staggerMs * j));
          results[k + j] = renderOne(p, inst.get(), s, s.first + k + j, used, t0);
          ++done;
        });
      if (icPending) {  // once a frame of this wave is rendering
        while (gFramesStarted.load() == startedBefore && done.load() < m)
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        for (size_t q = 0; q < a.instanceChangedDuringRender.size(); ++q) {
          const std::string& name = a.instanceChangedDuringRender[q];
          const int before = gFramesInFlight.load();
          const double at = msSince(t0);
          OfxStatus st = instanceChanged(p, inst.get(), kOfxTypeParameter, name, s.first);
          icDuring += std::string(q ? "," : "") + "{\"name\":" + jstr(name) + ",\"status\":" +
                      std::to_string(st) + ",\"frames_in_flight\":" + std::to_string(before) +
                      ",\"frames_in_flight_after\":" + std::to_string(gFramesInFlight.load()) +
                      ",\"start_ms\":" + jnum(at) + ",\"end_ms\":" + jnum(msSince(t0)) + "}";
        }
        icPending = false;
      }
      for (auto& th : wave) th.join();
    }
    wallMs = msSince(t0);
  }
  icDuring += "]";
  o += ",\"main_thread\":" + std::to_string(threadId()) + ",\"instance_changed_during_render\":" + icDuring;
  if (used != s.scale)  // rendered at full scale: downscaled as Natron shows it
    for (auto& r : results) if (!r.status.empty()) r.out = scaleFrame(r.out, s.scale);
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
         ",\"height\":" + std::to_string(r.out.h) + ",\"channels\":" + std::to_string(r.out.c) +
         ",\"thread\":" + std::to_string(r.thread) + ",\"start_ms\":" + jnum(r.startMs) +
         ",\"end_ms\":" + jnum(r.endMs) + ",\"rod_status\":" + std::to_string(r.rodStatus) +
         ",\"sequence\":" + (r.sequence ? "[" + jnum(r.time) + "," + jnum(r.time) + "]" : std::string("null")) +
         ",\"begin_sequence_status\":" + std::to_string(r.beginStatus) +
         ",\"end_sequence_status\":" + std::to_string(r.endStatus) +
         ",\"children\":" + childrenJson(r.children) + "}";
    if (r.status == "failed") exitCode = 3;
    else if (r.status == "aborted" && exitCode == 0) exitCode = 4;
  }
  o += "],\"wall_ms\":" + jnum(wallMs) + ",\"threads\":" + std::to_string(a.threads);
  if (!a.output.empty() && exitCode != 3 && rendered && !results.empty()) {
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
  // every render thread has exited: what this process still has running
  o += ",\"children_at_end\":" + childrenJson(childProcesses());

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
    o += "},\"actions\":[";
    for (size_t k = 0; k < gRec.actions.size(); ++k) o += (k ? "," : "") + jstr(gRec.actions[k]);
    o += "]";
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

  // A closed set: a variable-dimension int "a", a 4-double "r", a variable string "s", a pointer
  // "p" and a fixed 1-int "known".
  PS set; set.kind = "test";
  set.defInt("a", {}, 0);
  set.defDouble("r", {0, 0, 0, 0});
  set.defString("s", {}, 0);
  set.defPointer("p", {nullptr});
  set.defInt("known", {3});
  int iv = 0; double dv = 0; char* sv = nullptr; int dim = -1;
  check("setInt ok", ps->propSetInt(&set, "a", 0, 7) == kOfxStatOK);
  check("getInt ok", ps->propGetInt(&set, "a", 0, &iv) == kOfxStatOK && iv == 7);
  check("get unknown -> ErrUnknown", ps->propGetInt(&set, "missing", 0, &iv) == kOfxStatErrUnknown);
  check("set unknown -> ErrUnknown (closed)", ps->propSetInt(&set, "new", 0, 1) == kOfxStatErrUnknown);
  check("setN unknown -> ErrUnknown (closed)", ps->propSetIntN(&set, "new", 1, &iv) == kOfxStatErrUnknown);
  check("get wrong type -> ErrValue", ps->propGetDouble(&set, "a", 0, &dv) == kOfxStatErrValue);
  check("set wrong type -> ErrValue", ps->propSetString(&set, "a", 0, "x") == kOfxStatErrValue);
  check("get bad index -> ErrBadIndex", ps->propGetInt(&set, "a", 3, &iv) == kOfxStatErrBadIndex);
  check("set gap index -> ErrBadIndex", ps->propSetInt(&set, "a", 5, 1) == kOfxStatErrBadIndex);
  check("variable: set next index extends", ps->propSetInt(&set, "a", 1, 8) == kOfxStatOK);
  check("variable: dimension 2", ps->propGetDimension(&set, "a", &dim) == kOfxStatOK && dim == 2);
  check("fixed: set past the dimension -> ErrBadIndex", ps->propSetInt(&set, "known", 1, 1) == kOfxStatErrBadIndex);
  check("fixed: dimension 4", ps->propGetDimension(&set, "r", &dim) == kOfxStatOK && dim == 4);
  check("dimension unknown -> ErrUnknown", ps->propGetDimension(&set, "zz", &dim) == kOfxStatErrUnknown);
  double d4[5] = {1.5, 2.5, 3.5, 4.5, 5.5}, g4[5] = {0, 0, 0, 0, 0};
  check("setDoubleN", ps->propSetDoubleN(&set, "r", 4, d4) == kOfxStatOK);
  check("getDoubleN", ps->propGetDoubleN(&set, "r", 4, g4) == kOfxStatOK && g4[3] == 4.5 && g4[0] == 1.5);
  check("getDoubleN too many -> ErrBadIndex", ps->propGetDoubleN(&set, "r", 5, g4) == kOfxStatErrBadIndex);
  check("setDoubleN too many -> ErrBadIndex", ps->propSetDoubleN(&set, "r", 5, d4) == kOfxStatErrBadIndex);
  check("setDouble NaN -> ErrValue", ps->propSetDouble(&set, "r", 0, std::nan("")) == kOfxStatErrValue);
  const char* strs[2] = {"one", "two"};
  char* gs[2] = {nullptr, nullptr};
  check("setStringN", ps->propSetStringN(&set, "s", 2, strs) == kOfxStatOK);
  check("getStringN", ps->propGetStringN(&set, "s", 2, gs) == kOfxStatOK && std::string(gs[1]) == "two");
  check("getString", ps->propGetString(&set, "s", 0, &sv) == kOfxStatOK && std::string(sv) == "one");
  void* pv = nullptr;
  check("pointer round trip", ps->propSetPointer(&set, "p", 0, &iv) == kOfxStatOK &&
                                  ps->propGetPointer(&set, "p", 0, &pv) == kOfxStatOK && pv == &iv);
  ps->propSetInt(&set, "known", 0, 9);
  check("reset restores the initial value", ps->propReset(&set, "known") == kOfxStatOK &&
                                                 set.getInt("known") == 3);
  check("reset unknown -> ErrUnknown", ps->propReset(&set, "nope") == kOfxStatErrUnknown);
  check("NULL handle -> ErrBadHandle", ps->propGetInt(nullptr, "a", 0, &iv) == kOfxStatErrBadHandle);
  // The lists: the host, an effect descriptor (= its parameter set's properties), params by type.
  check("host set is closed", ps->propSetInt(gHost.host, "OfxNoSuchHostProp", 0, 1) == kOfxStatErrUnknown &&
                                  ps->propGetInt(gHost.host, kOfxImageEffectPropSupportsTiles, 0, &iv) == kOfxStatOK);
  {
    OfxImageEffectStruct fx;
    declareEffectDescriptor(fx.props, "/x.ofx");
    OfxPropertySetHandle setProps = nullptr;
    pa->paramSetGetPropertySet(&fx.params, &setProps);
    check("descriptor: param set properties are the effect's", setProps == &fx.props);
    const char* pages[1] = {"Controls"};
    check("descriptor: kOfxPluginPropParamPageOrder unknown (as HostSupport)",
          ps->propSetStringN(setProps, kOfxPluginPropParamPageOrder, 1, pages) == kOfxStatErrUnknown);
    check("descriptor: known property", ps->propSetInt(&fx.props, kOfxImageEffectPropSupportsTiles, 0, 0) == kOfxStatOK);
    OfxPropertySetHandle pb = nullptr, bo = nullptr, pg = nullptr;
    pa->paramDefine(&fx.params, kOfxParamTypePushButton, "pb", &pb);
    pa->paramDefine(&fx.params, kOfxParamTypeBoolean, "bo", &bo);
    pa->paramDefine(&fx.params, kOfxParamTypePage, "pg", &pg);
    check("push button has no default", ps->propSetInt(pb, kOfxParamPropDefault, 0, 1) == kOfxStatErrUnknown);
    check("boolean does not animate by default", ps->propGetInt(bo, kOfxParamPropAnimates, 0, &iv) == kOfxStatOK && iv == 0);
    check("boolean has no minimum", ps->propSetInt(bo, kOfxParamPropMin, 0, 0) == kOfxStatErrUnknown);
    check("page takes children", ps->propSetStringN(pg, kOfxParamPropPageChild, 2, strs) == kOfxStatOK);
    check("page has no interact", ps->propGetPointer(pg, "OfxParamPropInteractV1", 0, &pv) == kOfxStatErrUnknown);
  }

  // Parameter suite, through the varargs entry points.
  OfxParamSetStruct pset;
  OfxPropertySetHandle pp;
  OfxParamHandle h;
  check("define unknown type -> ErrUnknown", pa->paramDefine(&pset, "NoType", "x", &pp) == kOfxStatErrUnknown);
  struct T { const char* type; const char* name; };
  const T types[] = {{kOfxParamTypeInteger, "i"}, {kOfxParamTypeDouble, "d"}, {kOfxParamTypeBoolean, "b"},
                     {kOfxParamTypeChoice, "c"}, {kOfxParamTypeRGB, "rgb"}, {kOfxParamTypeRGBA, "rgba"},
                     {kOfxParamTypeDouble2D, "d2"}, {kOfxParamTypeInteger2D, "i2"},
                     {kOfxParamTypeDouble3D, "d3"}, {kOfxParamTypeInteger3D, "i3"},
                     {kOfxParamTypeString, "s"}, {kOfxParamTypeCustom, "cu"}, {kOfxParamTypePushButton, "pb"}};
  for (auto& t : types) pa->paramDefine(&pset, t.type, t.name, &pp);
  check("define duplicate -> ErrExists", pa->paramDefine(&pset, kOfxParamTypeInteger, "i", &pp) == kOfxStatErrExists);
  check("handle unknown -> ErrUnknown", pa->paramGetHandle(&pset, "nope", &h, nullptr) == kOfxStatErrUnknown);
  OfxParamHandle H[13];
  for (int k = 0; k < 13; ++k) pa->paramGetHandle(&pset, types[k].name, &H[k], nullptr);
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
  check("edit begin/end", pa->paramEditBegin(&pset, "x") == 0 && pa->paramEditEnd(&pset) == 0 &&
                              pa->paramEditEnd(&pset) == kOfxStatFailed);

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
    else if (opt == "--abort-at") {
      if (std::sscanf(v.c_str(), "%lf:%ld", &s.abortFrame, &s.abortAtMs) != 2 || s.abortAtMs < 0)
        return usage("--abort-at is FRAME:MS");
    } else if (opt == "--stagger-ms") {
      a.staggerMs = std::atoi(v.c_str());
      if (a.staggerMs < 0 || a.staggerMs > 60000) return usage("--stagger-ms must be 0..60000");
    } else if (opt == "--source-range") {
      // "a,b" with "inf" / "-inf" for Natron's unbounded ends (INT_MAX / INT_MIN)
      size_t comma = v.find(',');
      if (comma == std::string::npos) return usage("--source-range is first,last");
      auto end = [](const std::string& t) {
        if (t == "inf") return double(INT_MAX);
        if (t == "-inf") return double(INT_MIN);
        return std::atof(t.c_str());
      };
      s.sourceFirst = end(v.substr(0, comma));
      s.sourceLast = end(v.substr(comma + 1));
      s.hasSourceRange = true;
    } else if (opt == "--preload-local") {
      a.preloadLocal.push_back(v);
    } else if (opt == "--mask-rod") {
      if (!parseRect(v, s.maskRod)) return usage("--mask-rod is x1,y1,x2,y2");
      s.hasMaskRod = true;
    }
    else if (opt == "--instance-changed") a.instanceChanged.push_back(v);
    else if (opt == "--instance-changed-during-render") a.instanceChangedDuringRender.push_back(v);
    else if (opt == "--cancel-progress-after") a.cancelProgressAfter = std::atoi(v.c_str());
    else if (opt == "--window") {
      if (!parseRect(v, s.windowFull)) return usage("--window is x1,y1,x2,y2");
      s.hasWindow = true;
    } else return usage(("unknown option " + opt).c_str());
  }
  if (a.plugin.empty() || a.input.empty()) return usage("render needs --plugin and --input");
  return cmdRender(a, s);
}
