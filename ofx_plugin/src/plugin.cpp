// Faceplate.ofx: the thin OpenFX shell of Faceplate Mask and Faceplate Swap.
//
// Describe reads the parameter schema that the build wrote into the bundle's Resources
// (faceplate_schema.json, from faceplate.ofx.schema) and never starts Python. Render fetches every
// parameter value and image first, converts Source (byte/short/float, RGB/RGBA/Alpha, any rowBytes
// sign, any bounds) to a top-down float32 RGBA frame, releases the host images, then sends the
// frame to faceplate-worker through WorkerClient (no host suite is called while Python runs; the
// GIL lives in the worker process), and finally applies Mix / Mask with openfx-misc's maths
// (a = mix * (maskInvert ? 1 - m : m), out = a * effect + (1 - a) * source; a = mix without a
// connected Mask) and writes the output image in its own depth, components and row order.
// Worker errors become a persistent error message and kOfxStatFailed for that frame.
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "faceplate/client.h"
#include "faceplate/ofx_abi.h"
#include "json_mini.h"

namespace {
using namespace faceplate::ofx;
namespace fj = faceplate::json;

// ---- identity block -------------------------------------------------------------------------
// Identifiers are reverse-DNS and never change. Version policy: the major version is bumped when
// saved projects would break (a parameter removed, renamed or retyped, a clip changed); the minor
// version for compatible additions and fixes. These must equal the "version" of each effect in
// the schema (faceplate.ofx.effects); describe fails loudly when they differ.
struct Identity {
  const char* identifier;
  unsigned major, minor;
};
constexpr Identity kIdentities[] = {
    {"org.faceplate.Mask", 1, 3},
    {"org.faceplate.Swap", 1, 3},
};
constexpr int kNumPlugins = sizeof(kIdentities) / sizeof(kIdentities[0]);
constexpr const char* kGrouping = "Faceplate";
constexpr const char* kSchemaFile = "faceplate_schema.json";
constexpr const char* kWorkerExe = "faceplate-worker";
constexpr const char* kArchDir = "Linux-x86-64";
constexpr const char* kClipMask = "Mask";
constexpr const char* kParamMix = "mix";
constexpr const char* kParamMaskInvert = "maskInvert";
constexpr const char* kParamAnalyze = "analyzeSequence";  // push buttons (Faceplate Swap)
constexpr const char* kParamClear = "clearSequence";
constexpr const char* kParamRevision = "revision";  // hidden; bumped when the store changes
// Capabilities: full frames only (the worker detects faces on the whole frame), render scale 1;
// inputs may have any region of definition (a Roto's RoD is not at the origin).
constexpr int kSupportsTiles = 0;
constexpr int kSupportsMultiResolution = 1;
constexpr int kHostFrameThreading = 0;
// Analyze Sequence never runs over more frames than this (a clip with an unbounded range and
// no timeline bounds is refused).
constexpr long kMaxAnalyzeFrames = 1000000;

// ---- host suites ----------------------------------------------------------------------------
OfxHost* gHost = nullptr;
const OfxPropertySuiteV1* gProp = nullptr;
const OfxImageEffectSuiteV1* gFx = nullptr;
const OfxParameterSuiteV1* gParam = nullptr;
const OfxMessageSuiteV2* gMsg2 = nullptr;
const OfxMessageSuiteV1* gMsg1 = nullptr;
const OfxProgressSuiteV2* gProgress2 = nullptr;
const OfxProgressSuiteV1* gProgress1 = nullptr;
const OfxTimeLineSuiteV1* gTimeLine = nullptr;

// ---- schema ---------------------------------------------------------------------------------
struct ParamDef {
  std::string name, type, label, hint, page;
  fj::Value dflt, min, max;
  std::vector<std::string> choices;
  bool shell = false;   // mix / maskInvert / buttons / revision: handled here, not sent to Python
  bool secret = false;  // hidden from the user, never animated
};
struct ClipDef {
  std::string name;
  bool optional = false, is_mask = false;
  std::vector<std::string> components;
};
struct PluginDef {
  std::string identifier, label, description, grouping;
  unsigned major = 0, minor = 0;
  std::vector<ClipDef> clips;
  std::vector<ParamDef> params;
  std::vector<std::string> pages;  // in order of first appearance
  // output choice → "source" | "unpremultiplied" | "premultiplied" (schema "alpha")
  std::vector<std::pair<std::string, std::string>> alpha;
};

std::once_flag gSchemaOnce;
std::string gSchemaError;
std::vector<PluginDef> gDefs;
std::string gContentsDir;  // .../Faceplate.ofx.bundle/Contents

std::string dirName(const std::string& p) {
  size_t k = p.find_last_of('/');
  return k == std::string::npos ? std::string(".") : p.substr(0, k);
}

void loadSchema() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&loadSchema), &info) || !info.dli_fname) {
    gSchemaError = "cannot locate Faceplate.ofx (dladdr failed)";
    return;
  }
  gContentsDir = dirName(dirName(info.dli_fname));
  std::string path = gContentsDir + "/Resources/" + kSchemaFile;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    gSchemaError = "cannot read the parameter schema " + path;
    return;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    fj::Value doc = fj::parse(ss.str());
    if (doc["schema_version"].as_number(-1) != 1)
      throw std::runtime_error("unsupported schema_version");
    for (const fj::Value& p : doc["plugins"].arr) {
      PluginDef d;
      d.identifier = p["identifier"].as_string();
      d.label = p["label"].as_string(d.identifier);
      d.description = p["description"].as_string();
      d.grouping = p["grouping"].as_string(kGrouping);
      const fj::Value& v = p["version"];
      if (v.arr.size() == 2) {
        d.major = static_cast<unsigned>(v.arr[0].as_number());
        d.minor = static_cast<unsigned>(v.arr[1].as_number());
      }
      for (const fj::Value& c : p["clips"].arr) {
        ClipDef cd;
        cd.name = c["name"].as_string();
        cd.optional = c["optional"].as_number() != 0;
        cd.is_mask = c["is_mask"].as_number() != 0;
        for (const fj::Value& k : c["components"].arr) cd.components.push_back(k.as_string());
        d.clips.push_back(cd);
      }
      for (const fj::Value& q : p["params"].arr) {
        ParamDef pd;
        pd.name = q["name"].as_string();
        pd.type = q["type"].as_string();
        pd.label = q["label"].as_string(pd.name);
        pd.hint = q["hint"].as_string();
        pd.page = q["page"].as_string("Controls");
        pd.dflt = q["default"];
        pd.min = q["min"];
        pd.max = q["max"];
        for (const fj::Value& k : q["choices"].arr) pd.choices.push_back(k.as_string());
        pd.shell = q["owner"].as_string() == "shell";
        pd.secret = q["secret"].as_number() != 0;
        if (pd.name.empty()) throw std::runtime_error(d.identifier + ": a parameter has no name");
        if (std::find(d.pages.begin(), d.pages.end(), pd.page) == d.pages.end())
          d.pages.push_back(pd.page);
        d.params.push_back(std::move(pd));
      }
      for (const auto& kv : p["alpha"].obj) d.alpha.emplace_back(kv.first, kv.second.as_string());
      gDefs.push_back(std::move(d));
    }
  } catch (const std::exception& e) {
    gSchemaError = path + ": " + e.what();
    gDefs.clear();
  }
}

const PluginDef* defFor(int idx, std::string& err) {
  std::call_once(gSchemaOnce, loadSchema);
  if (!gSchemaError.empty()) {
    err = gSchemaError;
    return nullptr;
  }
  const Identity& id = kIdentities[idx];
  for (const PluginDef& d : gDefs) {
    if (d.identifier != id.identifier) continue;
    if (d.major != id.major || d.minor != id.minor) {
      err = d.identifier + ": schema version " + std::to_string(d.major) + "." +
            std::to_string(d.minor) + " differs from the plugin's " + std::to_string(id.major) +
            "." + std::to_string(id.minor);
      return nullptr;
    }
    return &d;
  }
  err = std::string("the schema has no plugin ") + id.identifier;
  return nullptr;
}

// ---- worker (one per process, shared by every instance; WorkerClient serializes calls) -------
std::mutex gWorkerMu;
std::shared_ptr<faceplate::WorkerClient> gWorker;
int gLoads = 0;

std::shared_ptr<faceplate::WorkerClient> worker() {
  std::lock_guard<std::mutex> lock(gWorkerMu);
  if (!gWorker) {
    faceplate::WorkerOptions o;
    o.worker_exe = gContentsDir + "/" + kArchDir + "/" + kWorkerExe;
    if (const char* ms = std::getenv("FACEPLATE_OFX_TIMEOUT_MS")) {
      int v = std::atoi(ms);
      if (v > 0) o.request_timeout_ms = v;
    }
    gWorker = std::make_shared<faceplate::WorkerClient>(o);
  }
  return gWorker;
}

// ---- placement: faceplate-worker (default) or in-process -----------------------------------
// FACEPLATE_OFX_PLACEMENT=inprocess loads libfaceplate_inproc.so (and its libpython, RTLD_GLOBAL)
// into the host — only when no Python runtime is loaded in the process at all (hostHasPython:
// a second libpython beside the host's is a crash waiting to happen). Any
// failure falls back to the worker. The choice is made once per process and logged on stderr.
typedef int (*InprocStartFn)(const char*, char*, int);
typedef int (*InprocRenderFn)(const char*, const float*, float*, int, int, char*, int, char*,
                              int);
std::once_flag gPlacementOnce;
bool gInProcess = false;
InprocRenderFn gInprocRender = nullptr;
std::string gPlacementNote;

std::string pathsValue(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

// Whether any Python runtime is loaded in this process: one in the global scope (linked by the
// host, or dlopened RTLD_GLOBAL) or one a host or another plugin dlopened RTLD_LOCAL, which
// dlsym(RTLD_DEFAULT) cannot see: every loaded object is asked for Py_IsInitialized.
bool hostHasPython() {
  if (dlsym(RTLD_DEFAULT, "Py_IsInitialized") != nullptr) return true;
  bool found = false;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        if (!info->dlpi_name || !*info->dlpi_name) return 0;
        void* h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
        if (!h) return 0;
        const bool py = dlsym(h, "Py_IsInitialized") != nullptr;
        dlclose(h);  // balances the NOLOAD reference; the object stays loaded
        if (py) *static_cast<bool*>(data) = true;
        return py ? 1 : 0;
      },
      &found);
  return found;
}

void choosePlacement() {
  const char* env = std::getenv("FACEPLATE_OFX_PLACEMENT");
  const std::string want = env ? env : "worker";
  const std::string bin = gContentsDir + "/" + kArchDir;
  if (want != "inprocess") {
    gPlacementNote = "rendering in faceplate-worker";
  } else if (hostHasPython()) {
    gPlacementNote = "FACEPLATE_OFX_PLACEMENT=inprocess ignored: the host has its own Python; "
                     "rendering in faceplate-worker";
  } else {
    const std::string paths = bin + "/faceplate-worker.paths";
    const std::string libpython = pathsValue(paths, "libpython");
    void* py = libpython.empty() ? nullptr : dlopen(libpython.c_str(), RTLD_NOW | RTLD_GLOBAL);
    void* lib = py ? dlopen((bin + "/libfaceplate_inproc.so").c_str(), RTLD_NOW | RTLD_LOCAL)
                   : nullptr;
    auto start = lib ? reinterpret_cast<InprocStartFn>(dlsym(lib, "faceplate_inproc_start"))
                     : nullptr;
    auto render = lib ? reinterpret_cast<InprocRenderFn>(dlsym(lib, "faceplate_inproc_render"))
                      : nullptr;
    char err[2048] = {0};
    if (!py || !lib || !start || !render) {
      const char* why = dlerror();
      gPlacementNote = std::string("in-process placement unavailable (") +
                       (why ? why : "no libpython in the paths file") +
                       "); rendering in faceplate-worker";
    } else if (!start(paths.c_str(), err, sizeof err)) {
      gPlacementNote = std::string("in-process Python failed to start (") + err +
                       "); rendering in faceplate-worker";
    } else {
      gInProcess = true;
      gInprocRender = render;
      gPlacementNote = "rendering in-process";
    }
  }
  std::fprintf(stderr, "Faceplate.ofx: %s\n", gPlacementNote.c_str());
}

// One render or analysis request, in whichever placement was chosen. src and dst must not alias.
bool renderCall(const std::string& effect, const float* src, int w, int h,
                const std::string& params, float* dst, faceplate::RenderReply& reply,
                std::string& err, double t, const std::string& action = "render") {
  std::call_once(gPlacementOnce, choosePlacement);
  if (!gInProcess) return worker()->render(effect, src, w, h, params, dst, reply, err, t, action);
  const std::string req = faceplate::render_request_json(effect, w, h, params, t, action);
  std::vector<char> rep(8192, 0), e(8192, 0);
  if (!gInprocRender(req.c_str(), src, dst, w, h, rep.data(), static_cast<int>(rep.size()),
                     e.data(), static_cast<int>(e.size()))) {
    err = e.data();
    return false;
  }
  const std::string json = rep.data();
  reply = faceplate::RenderReply();
  faceplate::ipc::json_get_string(json, "status", reply.status);
  faceplate::ipc::json_get_int(json, "faces", reply.faces);
  faceplate::ipc::json_get_number(json, "python_ms", reply.python_ms);
  return true;
}

// ---- messages -------------------------------------------------------------------------------
// The text travels as the format string itself, every '%' doubled, with no arguments: Natron
// 2.5 formats the message suite's varargs wrongly (it passes its va_list on to a variadic
// function), so a "%s" argument would arrive as garbage.
void persistentMessage(OfxImageEffectHandle fx, const char* type, const std::string& text) {
  std::string fmt;
  fmt.reserve(text.size());
  for (char c : text) fmt += c == '%' ? std::string("%%") : std::string(1, c);
  if (gMsg2) gMsg2->setPersistentMessage(fx, type, "", fmt.c_str());
  else if (gMsg1) gMsg1->message(fx, type, "", fmt.c_str());
}
void clearMessage(OfxImageEffectHandle fx) {
  if (gMsg2) gMsg2->clearPersistentMessage(fx);
}

// ---- instance -------------------------------------------------------------------------------
struct Instance {
  const PluginDef* def = nullptr;
  OfxImageClipHandle src = nullptr, mask = nullptr, out = nullptr;
  std::vector<OfxParamHandle> params;  // aligned with def->params
  OfxParamHandle mix = nullptr, maskInvert = nullptr, revision = nullptr;
  std::atomic<bool> messageShown{false};
};

Instance* instanceOf(OfxImageEffectHandle fx) {
  OfxPropertySetHandle ps;
  void* p = nullptr;
  if (gFx->getPropertySet(fx, &ps) != kOfxStatOK) return nullptr;
  if (gProp->propGetPointer(ps, kOfxPropInstanceData, 0, &p) != kOfxStatOK) return nullptr;
  return static_cast<Instance*>(p);
}

// ---- actions --------------------------------------------------------------------------------
OfxStatus onLoad() {
  if (!gHost) return kOfxStatErrMissingHostFeature;
  auto fetch = [](const char* n, int v) { return gHost->fetchSuite(gHost->host, n, v); };
  gProp = static_cast<const OfxPropertySuiteV1*>(fetch(kOfxPropertySuite, 1));
  gFx = static_cast<const OfxImageEffectSuiteV1*>(fetch(kOfxImageEffectSuite, 1));
  gParam = static_cast<const OfxParameterSuiteV1*>(fetch(kOfxParameterSuite, 1));
  if (!gProp || !gFx || !gParam) return kOfxStatErrMissingHostFeature;
  gMsg2 = static_cast<const OfxMessageSuiteV2*>(fetch(kOfxMessageSuite, 2));
  gMsg1 = gMsg2 ? reinterpret_cast<const OfxMessageSuiteV1*>(gMsg2)
                : static_cast<const OfxMessageSuiteV1*>(fetch(kOfxMessageSuite, 1));
  gProgress2 = static_cast<const OfxProgressSuiteV2*>(fetch(kOfxProgressSuite, 2));
  gProgress1 = gProgress2 ? nullptr
                          : static_cast<const OfxProgressSuiteV1*>(fetch(kOfxProgressSuite, 1));
  gTimeLine = static_cast<const OfxTimeLineSuiteV1*>(fetch(kOfxTimeLineSuite, 1));
  std::lock_guard<std::mutex> lock(gWorkerMu);
  ++gLoads;
  return kOfxStatOK;
}

OfxStatus onUnload() {
  std::shared_ptr<faceplate::WorkerClient> w;
  {
    std::lock_guard<std::mutex> lock(gWorkerMu);
    if (gLoads > 0 && --gLoads == 0) w.swap(gWorker);
  }
  w.reset();  // stops the worker (outside the lock)
  return kOfxStatOK;
}

// Property writes with their status checked: a host that refuses one (a name it does not know,
// a wrong type or dimension) fails the action with the property named on stderr, instead of
// leaving it silently unset. `may` marks the few properties a host may not know.
struct Props {
  OfxPropertySetHandle h;
  std::string failed;  // the first property the host refused
  void check(OfxStatus st, const char* name) {
    if (st != kOfxStatOK && failed.empty()) failed = name;
  }
  Props& str(const char* n, const std::string& v) {
    check(gProp->propSetString(h, n, 0, v.c_str()), n);
    return *this;
  }
  Props& strs(const char* n, const std::vector<const char*>& v) {
    check(gProp->propSetStringN(h, n, static_cast<int>(v.size()), v.data()), n);
    return *this;
  }
  Props& i(const char* n, int v) {
    check(gProp->propSetInt(h, n, 0, v), n);
    return *this;
  }
  Props& d(const char* n, double v) {
    check(gProp->propSetDouble(h, n, 0, v), n);
    return *this;
  }
  Props& may(const char* n, const std::string& v) {
    gProp->propSetString(h, n, 0, v.c_str());
    return *this;
  }
  OfxStatus status(const std::string& what) const {
    if (failed.empty()) return kOfxStatOK;
    std::fprintf(stderr, "Faceplate.ofx: %s: the host refused the property %s\n", what.c_str(),
                 failed.c_str());
    return kOfxStatErrFatal;
  }
};

OfxStatus describe(int idx, OfxImageEffectHandle fx) {
  std::string err;
  const PluginDef* d = defFor(idx, err);
  if (!d) {
    std::fprintf(stderr, "Faceplate.ofx: %s\n", err.c_str());
    return kOfxStatErrFatal;
  }
  OfxPropertySetHandle ps = nullptr;
  if (gFx->getPropertySet(fx, &ps) != kOfxStatOK || !ps) return kOfxStatErrFatal;
  Props p{ps, {}};
  p.str(kOfxPropLabel, d->label)
      .str(kOfxImageEffectPluginPropGrouping, d->grouping)
      .str(kOfxPropPluginDescription, d->description)
      .strs(kOfxImageEffectPropSupportedContexts,
            {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral})
      .strs(kOfxImageEffectPropSupportedPixelDepths,
            {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthFloat})
      .i(kOfxImageEffectPluginPropSingleInstance, 0)
      .i(kOfxImageEffectPluginPropHostFrameThreading, kHostFrameThreading)
      .i(kOfxImageEffectPropSupportsMultiResolution, kSupportsMultiResolution)
      .i(kOfxImageEffectPropSupportsTiles, kSupportsTiles)
      .i(kOfxImageEffectPropTemporalClipAccess, 0)
      .i(kOfxImageEffectPropSupportsMultipleClipDepths, 0)
      .i(kOfxImageEffectPropSupportsMultipleClipPARs, 0)
      .str(kOfxImageEffectPluginRenderThreadSafety, kOfxImageEffectRenderFullySafe);
  // The Output's premultiplication and components depend on "output": the host asks
  // GetClipPreferences again when it changes (a host that does not know the property ignores
  // it).
  if (!d->alpha.empty()) p.may("OfxImageEffectPropClipPreferencesSlaveParam", "output");
  return p.status(d->identifier + " describe");
}

const char* componentName(const std::string& c) {
  if (c == "RGBA") return kOfxImageComponentRGBA;
  if (c == "RGB") return kOfxImageComponentRGB;
  if (c == "Alpha") return kOfxImageComponentAlpha;
  return nullptr;
}

OfxStatus defineParam(OfxParamSetHandle set, const ParamDef& p) {
  const char* type = nullptr;
  if (p.type == "double") type = kOfxParamTypeDouble;
  else if (p.type == "int") type = kOfxParamTypeInteger;
  else if (p.type == "bool") type = kOfxParamTypeBoolean;
  else if (p.type == "choice") type = kOfxParamTypeChoice;
  else if (p.type == "string" || p.type == "path") type = kOfxParamTypeString;
  else if (p.type == "pushbutton") type = kOfxParamTypePushButton;
  if (!type) {
    std::fprintf(stderr, "Faceplate.ofx: parameter %s has unknown type %s\n", p.name.c_str(),
                 p.type.c_str());
    return kOfxStatErrFatal;
  }
  OfxPropertySetHandle ps = nullptr;
  if (gParam->paramDefine(set, type, p.name.c_str(), &ps) != kOfxStatOK || !ps)
    return kOfxStatErrFatal;
  Props q{ps, {}};
  q.str(kOfxPropLabel, p.label).str(kOfxParamPropHint, p.hint).str(kOfxParamPropScriptName, p.name);
  if (p.secret) q.i(kOfxParamPropSecret, 1);
  if (p.type == "pushbutton") return q.status("parameter " + p.name);
  if (p.type == "double") {
    q.d(kOfxParamPropDefault, p.dflt.as_number());
    if (!p.min.is_null()) q.d(kOfxParamPropMin, p.min.as_number()).d(kOfxParamPropDisplayMin, p.min.as_number());
    if (!p.max.is_null()) q.d(kOfxParamPropMax, p.max.as_number()).d(kOfxParamPropDisplayMax, p.max.as_number());
  } else if (p.type == "int") {
    q.i(kOfxParamPropDefault, static_cast<int>(p.dflt.as_number()));
    if (!p.min.is_null())
      q.i(kOfxParamPropMin, static_cast<int>(p.min.as_number()))
          .i(kOfxParamPropDisplayMin, static_cast<int>(p.min.as_number()));
    if (!p.max.is_null())
      q.i(kOfxParamPropMax, static_cast<int>(p.max.as_number()))
          .i(kOfxParamPropDisplayMax, static_cast<int>(p.max.as_number()));
    if (p.secret) q.i(kOfxParamPropAnimates, 0);
  } else if (p.type == "bool") {
    q.i(kOfxParamPropDefault, p.dflt.as_number() != 0 ? 1 : 0).i(kOfxParamPropAnimates, 0);
  } else if (p.type == "choice") {
    std::vector<const char*> opts;
    int dflt = 0;
    for (size_t k = 0; k < p.choices.size(); ++k) {
      opts.push_back(p.choices[k].c_str());
      if (p.choices[k] == p.dflt.as_string()) dflt = static_cast<int>(k);
    }
    q.strs(kOfxParamPropChoiceOption, opts).i(kOfxParamPropDefault, dflt).i(kOfxParamPropAnimates, 0);
  } else {
    q.str(kOfxParamPropDefault, p.dflt.as_string())
        .str(kOfxParamPropStringMode,
             p.type == "path" ? kOfxParamStringIsFilePath : kOfxParamStringIsSingleLine)
        .i(kOfxParamPropAnimates, 0);
  }
  return q.status("parameter " + p.name);
}

OfxStatus describeInContext(int idx, OfxImageEffectHandle fx) {
  std::string err;
  const PluginDef* d = defFor(idx, err);
  if (!d) return kOfxStatErrFatal;
  for (const ClipDef& c : d->clips) {
    OfxPropertySetHandle cp = nullptr;
    if (gFx->clipDefine(fx, c.name.c_str(), &cp) != kOfxStatOK || !cp) return kOfxStatErrFatal;
    std::vector<const char*> comps;
    for (const std::string& k : c.components)
      if (const char* n = componentName(k)) comps.push_back(n);
    Props q{cp, {}};
    q.strs(kOfxImageEffectPropSupportedComponents, comps)
        .i(kOfxImageEffectPropSupportsTiles, kSupportsTiles)
        .i(kOfxImageClipPropOptional, c.optional ? 1 : 0)
        .i(kOfxImageClipPropIsMask, c.is_mask ? 1 : 0);
    if (q.status("clip " + c.name) != kOfxStatOK) return kOfxStatErrFatal;
  }
  OfxParamSetHandle set = nullptr;
  if (gFx->getParamSet(fx, &set) != kOfxStatOK || !set) return kOfxStatErrFatal;
  for (const ParamDef& p : d->params)
    if (defineParam(set, p) != kOfxStatOK) return kOfxStatErrFatal;
  std::vector<const char*> pageNames;
  for (const std::string& page : d->pages) {
    OfxPropertySetHandle pp = nullptr;
    if (gParam->paramDefine(set, kOfxParamTypePage, page.c_str(), &pp) != kOfxStatOK || !pp)
      return kOfxStatErrFatal;
    std::vector<const char*> kids;
    for (const ParamDef& p : d->params)
      if (p.page == page) kids.push_back(p.name.c_str());
    Props q{pp, {}};
    q.str(kOfxPropLabel, page).strs(kOfxParamPropPageChild, kids);
    if (q.status("page " + page) != kOfxStatOK) return kOfxStatErrFatal;
    pageNames.push_back(page.c_str());
  }
  // The page order lives on the parameter set's properties (Natron 2.5's HostSupport does not
  // know it and lays pages out in definition order, which is the same order).
  OfxPropertySetHandle ps = nullptr;
  if (gParam->paramSetGetPropertySet(set, &ps) == kOfxStatOK && ps)
    gProp->propSetStringN(ps, kOfxPluginPropParamPageOrder, static_cast<int>(pageNames.size()),
                          pageNames.data());
  return kOfxStatOK;
}

OfxStatus createInstance(int idx, OfxImageEffectHandle fx) {
  std::string err;
  const PluginDef* d = defFor(idx, err);
  if (!d) return kOfxStatErrFatal;
  auto inst = std::make_unique<Instance>();
  inst->def = d;
  gFx->clipGetHandle(fx, kOfxImageEffectSimpleSourceClipName, &inst->src, nullptr);
  gFx->clipGetHandle(fx, kClipMask, &inst->mask, nullptr);
  gFx->clipGetHandle(fx, kOfxImageEffectOutputClipName, &inst->out, nullptr);
  OfxParamSetHandle set;
  gFx->getParamSet(fx, &set);
  for (const ParamDef& p : d->params) {
    OfxParamHandle h = nullptr;
    gParam->paramGetHandle(set, p.name.c_str(), &h, nullptr);
    if (!h) return kOfxStatErrFatal;
    inst->params.push_back(h);
    if (p.name == kParamMix) inst->mix = h;
    if (p.name == kParamMaskInvert) inst->maskInvert = h;
    if (p.name == kParamRevision) inst->revision = h;
  }
  if (!inst->src || !inst->out) return kOfxStatErrFatal;
  OfxPropertySetHandle ps;
  gFx->getPropertySet(fx, &ps);
  gProp->propSetPointer(ps, kOfxPropInstanceData, 0, inst.release());
  return kOfxStatOK;
}

OfxStatus destroyInstance(OfxImageEffectHandle fx) {
  delete instanceOf(fx);
  OfxPropertySetHandle ps;
  gFx->getPropertySet(fx, &ps);
  gProp->propSetPointer(ps, kOfxPropInstanceData, 0, nullptr);
  return kOfxStatOK;
}

// Render scale: the node works on full-resolution frames only (faces are detected on the whole
// frame). Like openfx-misc's plugins without render-scale support it fails GetRegionOfDefinition,
// IsIdentity and Render at any other scale: Natron's probe (RoD at scale 0.5) then marks it
// "no render-scale support" and renders it at full scale, downscaling itself.
bool fullScale(OfxPropertySetHandle in) {
  double sc[2] = {1.0, 1.0};
  if (!in || gProp->propGetDoubleN(in, kOfxImageEffectPropRenderScale, 2, sc) != kOfxStatOK)
    return true;
  return sc[0] == 1.0 && sc[1] == 1.0;
}

double mixAt(Instance* inst, double t) {
  double mix = 1.0;
  if (inst->mix) gParam->paramGetValueAtTime(inst->mix, t, &mix);
  return mix;
}

OfxStatus isIdentity(OfxImageEffectHandle fx, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  Instance* inst = instanceOf(fx);
  if (!inst) return kOfxStatErrBadHandle;
  if (!fullScale(in)) return kOfxStatFailed;
  double t = 0;
  gProp->propGetDouble(in, kOfxPropTime, 0, &t);
  if (mixAt(inst, t) != 0.0) return kOfxStatReplyDefault;
  gProp->propSetString(out, kOfxPropName, 0, kOfxImageEffectSimpleSourceClipName);
  gProp->propSetDouble(out, kOfxPropTime, 0, t);
  return kOfxStatOK;
}

// ---- parameter values → JSON ----------------------------------------------------------------
void jsonString(std::string& o, const std::string& s) {
  o += '"';
  for (unsigned char c : s) {
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  o += '"';
}

// Reads every Python-owned parameter at time t; false (with err) on a value JSON cannot carry.
bool paramsJson(Instance* inst, double t, std::string& out, std::string& err) {
  out = "{";
  bool first = true;
  for (size_t k = 0; k < inst->params.size(); ++k) {
    const ParamDef& p = inst->def->params[k];
    if (p.shell) continue;
    OfxParamHandle h = inst->params[k];
    std::string v;
    if (p.type == "double") {
      double d = 0;
      gParam->paramGetValueAtTime(h, t, &d);
      if (!std::isfinite(d)) {
        err = "parameter " + p.name + " is not a finite number";
        return false;
      }
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", d);
      v = b;
      std::replace(v.begin(), v.end(), ',', '.');  // a host locale with a decimal comma
    } else if (p.type == "int" || p.type == "bool" || p.type == "choice") {
      int i = 0;
      gParam->paramGetValueAtTime(h, t, &i);
      if (p.type == "int") {
        v = std::to_string(i);
      } else if (p.type == "bool") {
        v = i ? "true" : "false";
      } else {
        if (i < 0 || static_cast<size_t>(i) >= p.choices.size()) {
          err = "parameter " + p.name + ": choice index " + std::to_string(i) + " out of range";
          return false;
        }
        jsonString(v, p.choices[static_cast<size_t>(i)]);
      }
    } else {
      char* s = nullptr;
      gParam->paramGetValueAtTime(h, t, &s);
      jsonString(v, s ? s : "");
    }
    if (!first) out += ',';
    first = false;
    jsonString(out, p.name);
    out += ':';
    out += v;
  }
  out += '}';
  return true;
}

// ---- premultiplication ----------------------------------------------------------------------
// The "alpha" mode of the effect's current output choice ("source" when it has none).
std::string alphaMode(Instance* inst, double t) {
  for (size_t k = 0; k < inst->params.size(); ++k) {
    const ParamDef& p = inst->def->params[k];
    if (p.name != "output" || p.type != "choice") continue;
    int i = 0;
    gParam->paramGetValueAtTime(inst->params[k], t, &i);
    if (i < 0 || static_cast<size_t>(i) >= p.choices.size()) break;
    for (const auto& kv : inst->def->alpha)
      if (kv.first == p.choices[static_cast<size_t>(i)]) return kv.second;
  }
  return "source";
}

std::string premultOf(OfxPropertySetHandle props) {
  char* v = nullptr;
  if (!props || gProp->propGetString(props, kOfxImageEffectPropPreMultiplication, 0, &v) !=
                    kOfxStatOK || !v)
    return kOfxImageOpaque;
  return v;
}

OfxStatus getClipPreferences(OfxImageEffectHandle fx, OfxPropertySetHandle out) {
  Instance* inst = instanceOf(fx);
  if (!inst) return kOfxStatErrBadHandle;
  const std::string mode = alphaMode(inst, 0.0);
  std::string premult;
  if (mode == "unpremultiplied") {
    premult = kOfxImageAlphaUnPremultiplied;
  } else if (mode == "premultiplied") {
    premult = kOfxImageAlphaPremultiplied;
  } else {
    OfxPropertySetHandle cp = nullptr;
    gFx->clipGetPropertySet(inst->src, &cp);
    premult = premultOf(cp);
  }
  gProp->propSetString(out, kOfxImageEffectPropPreMultiplication, 0, premult.c_str());
  // An output that carries a matte (its alpha is not the Source's) is RGBA whatever the
  // Source's components: with an RGB Source (JPEG, video readers) the host would otherwise give
  // the Output the Source's RGB and drop the matte.
  if (mode != "source") {
    const std::string key = std::string(kOfxImageClipPropComponentsPrefix) +
                            kOfxImageEffectOutputClipName;
    if (gProp->propSetString(out, key.c_str(), 0, kOfxImageComponentRGBA) != kOfxStatOK) {
      std::fprintf(stderr, "Faceplate.ofx: the host refused %s\n", key.c_str());
      return kOfxStatFailed;
    }
  }
  return kOfxStatOK;
}

// ---- pixels ---------------------------------------------------------------------------------
struct View {
  unsigned char* data = nullptr;
  OfxRectI bounds{0, 0, 0, 0};
  int rowBytes = 0, nComps = 0, bytesPerComp = 0;
  bool contains(int x, int y) const {
    return x >= bounds.x1 && x < bounds.x2 && y >= bounds.y1 && y < bounds.y2;
  }
  unsigned char* pixel(int x, int y) const {
    return data + static_cast<long>(y - bounds.y1) * rowBytes +
           static_cast<long>(x - bounds.x1) * nComps * bytesPerComp;
  }
  float get(int x, int y, int c) const {  // normalised: byte /255, short /65535, float as is
    const unsigned char* p = pixel(x, y) + c * bytesPerComp;
    if (bytesPerComp == 1) return static_cast<float>(*p) / 255.0f;
    if (bytesPerComp == 2) {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<float>(v) / 65535.0f;
    }
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  void set(int x, int y, int c, float v) const {
    unsigned char* p = pixel(x, y) + c * bytesPerComp;
    if (bytesPerComp == 1) {
      *p = static_cast<unsigned char>(std::clamp(std::floor(v * 255.0f + 0.5f), 0.0f, 255.0f));
    } else if (bytesPerComp == 2) {
      auto q = static_cast<uint16_t>(std::clamp(std::floor(v * 65535.0f + 0.5f), 0.0f, 65535.0f));
      std::memcpy(p, &q, 2);
    } else {
      std::memcpy(p, &v, 4);
    }
  }
};

bool viewOf(OfxPropertySetHandle img, View& v) {
  void* data = nullptr;
  char* depth = nullptr;
  char* comps = nullptr;
  if (!img) return false;
  if (gProp->propGetPointer(img, kOfxImagePropData, 0, &data) != kOfxStatOK || !data) return false;
  if (gProp->propGetIntN(img, kOfxImagePropBounds, 4, &v.bounds.x1) != kOfxStatOK) return false;
  if (gProp->propGetInt(img, kOfxImagePropRowBytes, 0, &v.rowBytes) != kOfxStatOK) return false;
  if (gProp->propGetString(img, kOfxImageEffectPropPixelDepth, 0, &depth) != kOfxStatOK || !depth)
    return false;
  if (gProp->propGetString(img, kOfxImageEffectPropComponents, 0, &comps) != kOfxStatOK || !comps)
    return false;
  v.data = static_cast<unsigned char*>(data);
  std::string d = depth, c = comps;
  v.nComps = c == kOfxImageComponentRGBA ? 4 : c == kOfxImageComponentRGB ? 3
           : c == kOfxImageComponentAlpha ? 1 : 0;
  v.bytesPerComp = d == kOfxBitDepthByte ? 1 : d == kOfxBitDepthShort ? 2
                 : d == kOfxBitDepthFloat ? 4 : 0;
  return v.nComps > 0 && v.bytesPerComp > 0 && v.bounds.x2 >= v.bounds.x1 &&
         v.bounds.y2 >= v.bounds.y1;
}

// Reads a View as straight RGBA floats (RGB → alpha 1, Alpha → RGB 0).
void readRGBA(const View& v, int x, int y, float* px) {
  if (v.nComps == 1) {
    px[0] = px[1] = px[2] = 0.0f;
    px[3] = v.get(x, y, 0);
    return;
  }
  for (int c = 0; c < 3; ++c) px[c] = v.get(x, y, c);
  px[3] = v.nComps == 4 ? v.get(x, y, 3) : 1.0f;
}

// The part of `src` inside `region` as a top-down straight RGBA float frame (0 outside src).
// The part of `src` inside `region` as a top-down straight RGBA float frame into `frame`
// (w × h × 4 floats; 0 outside src). `unpremultiply`: divide colour by alpha where alpha > 0.
void toFrame(const View& src, const OfxRectI& region, float* frame, bool unpremultiply) {
  const int w = region.x2 - region.x1, h = region.y2 - region.y1;
  const bool covered = src.bounds.x1 <= region.x1 && src.bounds.x2 >= region.x2 &&
                       src.bounds.y1 <= region.y1 && src.bounds.y2 >= region.y2;
  if (!covered) std::fill(frame, frame + static_cast<size_t>(w) * h * 4, 0.0f);
  const bool floatRGBA = src.bytesPerComp == 4 && src.nComps == 4;
  for (int r = 0; r < h; ++r) {
    const int y = region.y2 - 1 - r;  // top-down row r ↔ OFX row y (bottom-up)
    if (y < src.bounds.y1 || y >= src.bounds.y2) continue;
    const int xa = std::max(region.x1, src.bounds.x1), xb = std::min(region.x2, src.bounds.x2);
    if (xb <= xa) continue;
    float* row = frame + (static_cast<size_t>(r) * w + (xa - region.x1)) * 4;
    if (floatRGBA) {  // the common case: one copy per row
      std::memcpy(row, src.pixel(xa, y), static_cast<size_t>(xb - xa) * 16);
    } else {
      for (int x = xa; x < xb; ++x) readRGBA(src, x, y, row + static_cast<size_t>(x - xa) * 4);
    }
    if (unpremultiply) {  // while the row is in cache
      for (int x = 0; x < xb - xa; ++x) {
        float* px = row + static_cast<size_t>(x) * 4;
        if (px[3] > 0.0f && px[3] != 1.0f)
          for (int c = 0; c < 3; ++c) px[c] /= px[3];
      }
    }
  }
}

// FACEPLATE_OFX_TIMING=1: one line per render on stderr with the milliseconds of each phase
// (host images in / the Python call, its own Python time / host images out).
struct Timing {
  bool on = std::getenv("FACEPLATE_OFX_TIMING") != nullptr;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(), last = t0;
  std::string text;
  double python_ms = 0;
  void mark(const char* phase) {
    if (!on) return;
    auto now = std::chrono::steady_clock::now();
    char b[64];
    std::snprintf(b, sizeof b, " %s=%.2f", phase,
                  std::chrono::duration<double, std::milli>(now - last).count());
    text += b;
    last = now;
  }
  void report(const std::string& label) const {
    if (!on) return;
    std::fprintf(stderr, "Faceplate.ofx timing %s:%s python=%.2f total=%.2f\n", label.c_str(),
                 text.c_str(), python_ms,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
};

struct Images {  // releases whatever it holds
  OfxPropertySetHandle src = nullptr, mask = nullptr, dst = nullptr;
  void release() {
    for (OfxPropertySetHandle* h : {&src, &mask, &dst})
      if (*h) {
        gFx->clipReleaseImage(*h);
        *h = nullptr;
      }
  }
  ~Images() { release(); }
};

OfxStatus fail(OfxImageEffectHandle fx, Instance* inst, const std::string& text) {
  persistentMessage(fx, kOfxMessageError, text);
  inst->messageShown = true;
  return kOfxStatFailed;
}

// A frame that fails. Hosts may keep something for it in their cache (Natron 2.5 serves the
// Source for that frame on the next render until a parameter changes): the message says so.
OfxStatus failFrame(OfxImageEffectHandle fx, Instance* inst, const std::string& text) {
  return fail(fx, inst, text + " (the host may keep this frame from its cache until a "
                               "parameter changes)");
}

OfxStatus render(OfxImageEffectHandle fx, OfxPropertySetHandle in) {
  Instance* inst = instanceOf(fx);
  if (!inst) return kOfxStatErrBadHandle;
  if (!fullScale(in)) return kOfxStatFailed;
  double t = 0;
  gProp->propGetDouble(in, kOfxPropTime, 0, &t);
  OfxRectI window{0, 0, 0, 0};
  gProp->propGetIntN(in, kOfxImageEffectPropRenderWindow, 4, &window.x1);
  Timing timing;

  // 1. Parameter values.
  std::string params, err;
  if (!paramsJson(inst, t, params, err)) return failFrame(fx, inst, inst->def->label + ": " + err);
  const double mix = mixAt(inst, t);
  int maskInvert = 0;
  if (inst->maskInvert) gParam->paramGetValueAtTime(inst->maskInvert, t, &maskInvert);
  if (gFx->abort(fx)) return kOfxStatOK;

  // 2. The worker first: renders waiting for it (it serves one frame at a time) hold no host
  // image, and stop waiting when the host aborts them.
  std::call_once(gPlacementOnce, choosePlacement);
  faceplate::WorkerClient::Lease lease;
  if (!gInProcess) {
    lease = worker()->acquire([fx] { return gFx->abort(fx) != 0; });
    if (!lease) return kOfxStatOK;  // aborted while waiting
  }
  timing.mark("wait_worker");

  // 3. Images → a top-down float RGBA frame over the output bounds, and the mask as floats.
  Images img;
  View src, dst, msk;
  if (gFx->clipGetImage(inst->out, t, nullptr, &img.dst) != kOfxStatOK || !viewOf(img.dst, dst))
    return kOfxStatFailed;
  if (gFx->clipGetImage(inst->src, t, nullptr, &img.src) != kOfxStatOK || !viewOf(img.src, src))
    return kOfxStatFailed;
  bool hasMask = false;
  int connected = 0;
  OfxPropertySetHandle mcp = nullptr;
  if (inst->mask && gFx->clipGetPropertySet(inst->mask, &mcp) == kOfxStatOK)
    gProp->propGetInt(mcp, kOfxImageClipPropConnected, 0, &connected);
  if (connected && gFx->clipGetImage(inst->mask, t, nullptr, &img.mask) == kOfxStatOK)
    hasMask = viewOf(img.mask, msk);
  const OfxRectI region = dst.bounds;
  const int w = region.x2 - region.x1, h = region.y2 - region.y1;
  if (w <= 0 || h <= 0) return kOfxStatOK;
  // A premultiplied Source is rendered in straight colour (Python's convention) and premultiplied
  // again on the way out when the Output follows the Source ("source"); the other modes write
  // the render as is and declare it so in GetClipPreferences.
  const bool srcPremult = src.nComps == 4 && premultOf(img.src) == kOfxImageAlphaPremultiplied;
  const bool repremultiply = srcPremult && alphaMode(inst, t) == "source";
  // The frame goes straight into the worker's shared input buffer (the lease holds the client
  // until the result has been written out); in-process, into per-thread buffers kept between
  // renders (no fresh pages to fault in for every frame).
  const size_t nfloats = static_cast<size_t>(w) * h * 4;
  thread_local std::vector<float> localFrame, localResult;
  float* frame = nullptr;
  if (gInProcess) {
    localFrame.resize(nfloats);
    localResult.resize(nfloats);
    frame = localFrame.data();
  } else {
    frame = lease.input(w, h, err);
    if (!frame) return failFrame(fx, inst, inst->def->label + ": " + err);
  }
  toFrame(src, region, frame, srcPremult);
  std::vector<float> alpha;  // per-pixel mix × mask, only with a Mask
  if (hasMask) {
    alpha.assign(static_cast<size_t>(w) * h, static_cast<float>(mix));
    for (int r = 0; r < h; ++r) {
      const int y = region.y2 - 1 - r;  // top-down row r ↔ OFX row y (bottom-up)
      for (int x = region.x1; x < region.x2; ++x) {
        float m = msk.contains(x, y) ? msk.get(x, y, msk.nComps == 4 ? 3 : 0) : 0.0f;
        alpha[static_cast<size_t>(r) * w + (x - region.x1)] *= maskInvert ? 1.0f - m : m;
      }
    }
  }
  img.release();  // no host image is held while Python runs
  timing.mark("images_in");
  if (gFx->abort(fx)) return kOfxStatOK;

  // 4. The worker (no host suite call until it answers).
  faceplate::RenderReply reply;
  const float* result = nullptr;
  bool ok;
  if (gInProcess) {
    ok = renderCall(inst->def->identifier, frame, w, h, params, localResult.data(), reply, err, t);
    result = localResult.data();
  } else {
    ok = lease.render(inst->def->identifier, params, reply, err, t);
    result = lease.output();
  }
  if (!ok) return failFrame(fx, inst, inst->def->label + ": " + err);
  timing.mark("python_call");
  timing.python_ms = reply.python_ms;
  if (gFx->abort(fx)) return kOfxStatOK;

  // 5. Mix / mask, then write the output in its own depth, components and row order.
  if (gFx->clipGetImage(inst->out, t, nullptr, &img.dst) != kOfxStatOK || !viewOf(img.dst, dst))
    return kOfxStatFailed;
  const int x1 = std::max({window.x1, dst.bounds.x1, region.x1});
  const int x2 = std::min({window.x2, dst.bounds.x2, region.x2});
  const int y1 = std::max({window.y1, dst.bounds.y1, region.y1});
  const int y2 = std::min({window.y2, dst.bounds.y2, region.y2});
  const bool plain = !hasMask && mix == 1.0 && !repremultiply && dst.bytesPerComp == 4 &&
                     dst.nComps == 4;
  for (int y = y1; y < y2; ++y) {
    const int r = region.y2 - 1 - y;
    if (plain) {  // the common case: the render as is, one copy per row
      if (x2 > x1)
        std::memcpy(dst.pixel(x1, y), &result[(static_cast<size_t>(r) * w + (x1 - region.x1)) * 4],
                    static_cast<size_t>(x2 - x1) * 16);
      continue;
    }
    const bool floatRGBA = dst.bytesPerComp == 4 && dst.nComps == 4;
    unsigned char* orow = x2 > x1 ? dst.pixel(x1, y) : nullptr;
    if (repremultiply && floatRGBA && !hasMask && mix == 1.0) {  // premultiplied render
      const float* rr = result + (static_cast<size_t>(r) * w + (x1 - region.x1)) * 4;
      for (int x = 0; x < x2 - x1; ++x) {
        const float* q = rr + static_cast<size_t>(x) * 4;
        const float px[4] = {q[0] * q[3], q[1] * q[3], q[2] * q[3], q[3]};
        std::memcpy(orow + static_cast<size_t>(x) * 16, px, 16);
      }
      continue;
    }
    for (int x = x1; x < x2; ++x) {
      const size_t k = static_cast<size_t>(r) * w + (x - region.x1);
      const float a = hasMask ? alpha[k] : static_cast<float>(mix);
      float px[4];
      for (int c = 0; c < 4; ++c) px[c] = a * result[k * 4 + c] + (1.0f - a) * frame[k * 4 + c];
      if (repremultiply)
        for (int c = 0; c < 3; ++c) px[c] *= px[3];
      if (floatRGBA) {
        std::memcpy(orow + static_cast<size_t>(x - x1) * 16, px, 16);
      } else if (dst.nComps == 1) {
        dst.set(x, y, 0, px[3]);
      } else {
        for (int c = 0; c < dst.nComps; ++c) dst.set(x, y, c, px[c]);
      }
    }
  }
  img.release();
  timing.mark("images_out");
  timing.report(inst->def->label);
  std::string note = reply.status;
  if (!reply.recovered.empty())
    note = reply.recovered + (note.empty() ? "" : "; " + note);
  if (!note.empty()) {
    persistentMessage(fx, kOfxMessageWarning, inst->def->label + ": " + note);
    inst->messageShown = true;
  } else if (inst->messageShown.exchange(false)) {
    clearMessage(fx);
  }
  return kOfxStatOK;
}

// ---- analysis (Faceplate Swap's Analyze Sequence / Clear buttons) ---------------------------
struct Progress {  // the host's progress bar, v2 or v1; ends itself
  OfxImageEffectHandle fx;
  bool started = false;
  Progress(OfxImageEffectHandle f, const char* label) : fx(f) {
    if (gProgress2) started = gProgress2->progressStart(fx, label, "faceplate.analyze") == kOfxStatOK;
    else if (gProgress1) started = gProgress1->progressStart(fx, label) == kOfxStatOK;
  }
  // false when the user cancelled
  bool update(double v) {
    if (!started) return true;
    OfxStatus st = gProgress2 ? gProgress2->progressUpdate(fx, v) : gProgress1->progressUpdate(fx, v);
    return st != kOfxStatReplyNo;
  }
  ~Progress() {
    if (!started) return;
    if (gProgress2) gProgress2->progressEnd(fx);
    else gProgress1->progressEnd(fx);
  }
};

// Runs detection + alignment on every frame of the Source clip's frame range and stores the
// tracks in the node's alignments store (the worker writes them), then smooths them. Stops at the
// first failing frame with a message, or when the user cancels (the frames done are kept).
// The frames Analyze Sequence runs over: the Source clip's frame range, clamped to the
// timeline's bounds (a clip's range can be unbounded, e.g. a generator's or a still's). False
// with err when neither bounds it or the range is empty.
bool analyzeRange(OfxImageEffectHandle fx, Instance* inst, long& first, long& last,
                  std::string& err) {
  OfxPropertySetHandle cp = nullptr;
  double range[2] = {0, 0};
  if (gFx->clipGetPropertySet(inst->src, &cp) != kOfxStatOK ||
      gProp->propGetDoubleN(cp, kOfxImageEffectPropFrameRange, 2, range) != kOfxStatOK) {
    err = "cannot read the Source clip's frame range";
    return false;
  }
  double lo = range[0], hi = range[1], t0 = 0, t1 = 0;
  if (gTimeLine && gTimeLine->getTimeBounds(fx, &t0, &t1) == kOfxStatOK &&
      std::isfinite(t0) && std::isfinite(t1) && t1 >= t0) {
    lo = std::max(lo, t0);
    hi = std::min(hi, t1);
  }
  const double limit = 1e9;  // beyond any real clip: INT_MIN/INT_MAX and ±DBL_MAX mean unbounded
  if (!std::isfinite(lo) || !std::isfinite(hi) || std::fabs(lo) >= limit ||
      std::fabs(hi) >= limit) {
    err = "the Source clip's frame range is unbounded; set the project's frame range";
    return false;
  }
  first = std::lround(std::ceil(lo - 1e-6));
  last = std::lround(std::floor(hi + 1e-6));
  if (last < first) {
    err = "the Source clip has no frame inside the timeline";
    return false;
  }
  if (last - first + 1 > kMaxAnalyzeFrames) {
    err = "the Source clip's range " + std::to_string(first) + "-" + std::to_string(last) +
          " is longer than " + std::to_string(kMaxAnalyzeFrames) + " frames";
    return false;
  }
  return true;
}

// Makes the host forget the frames it rendered before the store changed (its cache keys on
// parameter values, not on the store): bumps the hidden revision parameter.
void bumpRevision(Instance* inst) {
  if (!inst->revision) return;
  int v = 0;
  gParam->paramGetValue(inst->revision, &v);
  gParam->paramSetValue(inst->revision, v + 1);
}

OfxStatus analyzeSequence(OfxImageEffectHandle fx, Instance* inst) {
  long first = 0, last = -1;
  std::string params, err;
  if (!analyzeRange(fx, inst, first, last, err))
    return fail(fx, inst, inst->def->label + ": Analyze Sequence: " + err);
  if (!paramsJson(inst, static_cast<double>(first), params, err))
    return fail(fx, inst, inst->def->label + ": " + err);
  const long n = last - first + 1;
  Progress progress(fx, "Faceplate: analysing faces");
  std::vector<float> frame, result;
  long faces = 0, done = 0;
  bool cancelled = false;
  for (long f = first; f <= last; ++f) {
    const double t = static_cast<double>(f);
    Images img;
    View src;
    if (gFx->clipGetImage(inst->src, t, nullptr, &img.src) != kOfxStatOK || !viewOf(img.src, src))
      return fail(fx, inst, inst->def->label + ": no Source image at frame " + std::to_string(f));
    const OfxRectI region = src.bounds;
    const int w = region.x2 - region.x1, h = region.y2 - region.y1;
    if (w <= 0 || h <= 0) continue;
    frame.resize(static_cast<size_t>(w) * h * 4);
    toFrame(src, region, frame.data(),
            src.nComps == 4 && premultOf(img.src) == kOfxImageAlphaPremultiplied);
    img.release();  // no host image is held while Python runs
    result.resize(frame.size());
    faceplate::RenderReply reply;
    if (!renderCall(inst->def->identifier, frame.data(), w, h, params, result.data(), reply, err,
                    t, "analyze"))
      return fail(fx, inst, inst->def->label + ": Analyze Sequence, frame " + std::to_string(f) +
                                ": " + err);
    faces += reply.faces;
    ++done;
    if (!progress.update(static_cast<double>(done) / static_cast<double>(n))) {
      cancelled = true;
      break;
    }
  }
  if (done > 0) bumpRevision(inst);
  if (done > 0 && !cancelled) {
    float px[4] = {0, 0, 0, 0}, out[4];
    faceplate::RenderReply reply;
    if (!renderCall(inst->def->identifier, px, 1, 1, params, out, reply, err,
                    static_cast<double>(first), "analyze_end"))
      return fail(fx, inst, inst->def->label + ": smoothing the tracks: " + err);
  }
  std::string note = "analysed " + std::to_string(done) + " of " + std::to_string(n) +
                     " frames, " + std::to_string(faces) + " faces" +
                     (cancelled ? " (cancelled: the frames done are kept, not smoothed)" : "");
  persistentMessage(fx, kOfxMessageMessage, inst->def->label + ": " + note);
  inst->messageShown = true;
  return kOfxStatOK;
}

OfxStatus clearSequence(OfxImageEffectHandle fx, Instance* inst) {
  std::string params, err;
  if (!paramsJson(inst, 0.0, params, err)) return fail(fx, inst, inst->def->label + ": " + err);
  float px[4] = {0, 0, 0, 0}, out[4];
  faceplate::RenderReply reply;
  if (!renderCall(inst->def->identifier, px, 1, 1, params, out, reply, err, 0.0, "clear"))
    return fail(fx, inst, inst->def->label + ": Clear: " + err);
  bumpRevision(inst);
  persistentMessage(fx, kOfxMessageMessage, inst->def->label + ": " + reply.status);
  inst->messageShown = true;
  return kOfxStatOK;
}

OfxStatus instanceChanged(OfxImageEffectHandle fx, OfxPropertySetHandle in) {
  Instance* inst = instanceOf(fx);
  if (!inst) return kOfxStatErrBadHandle;
  char* type = nullptr;
  char* name = nullptr;
  gProp->propGetString(in, kOfxPropType, 0, &type);
  gProp->propGetString(in, kOfxPropName, 0, &name);
  if (!type || !name || std::string(type) != kOfxTypeParameter) return kOfxStatReplyDefault;
  const std::string n = name;
  if (n == kParamAnalyze) return analyzeSequence(fx, inst);
  if (n == kParamClear) return clearSequence(fx, inst);
  return kOfxStatReplyDefault;
}

OfxStatus mainEntry(int idx, const char* action, const void* handle, OfxPropertySetHandle in,
                    OfxPropertySetHandle out) {
  try {
    std::string a = action ? action : "";
    auto fx = static_cast<OfxImageEffectHandle>(const_cast<void*>(handle));
    if (a == kOfxActionLoad) return onLoad();
    if (a == kOfxActionUnload) return onUnload();
    if (a == kOfxActionDescribe) return describe(idx, fx);
    if (a == kOfxImageEffectActionDescribeInContext) return describeInContext(idx, fx);
    if (a == kOfxActionCreateInstance) return createInstance(idx, fx);
    if (a == kOfxActionDestroyInstance) return destroyInstance(fx);
    if (a == kOfxImageEffectActionIsIdentity) return isIdentity(fx, in, out);
    if (a == kOfxImageEffectActionGetRegionOfDefinition)
      return fullScale(in) ? kOfxStatReplyDefault : kOfxStatFailed;
    if (a == kOfxImageEffectActionRender) return render(fx, in);
    if (a == kOfxActionInstanceChanged) return instanceChanged(fx, in);
    if (a == kOfxImageEffectActionGetClipPreferences) return getClipPreferences(fx, out);
    return kOfxStatReplyDefault;
  } catch (const std::bad_alloc&) {
    return kOfxStatErrMemory;
  } catch (...) {
    return kOfxStatErrUnknown;
  }
}

template <int N>
OfxStatus entry(const char* action, const void* handle, OfxPropertySetHandle in,
                OfxPropertySetHandle out) {
  return mainEntry(N, action, handle, in, out);
}

void setHost(OfxHost* host) { gHost = host; }

OfxPlugin gPlugins[kNumPlugins] = {
    {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kIdentities[0].identifier,
     kIdentities[0].major, kIdentities[0].minor, setHost, entry<0>},
    {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kIdentities[1].identifier,
     kIdentities[1].major, kIdentities[1].minor, setHost, entry<1>},
};
}  // namespace

FACEPLATE_OFX_EXPORT int OfxGetNumberOfPlugins(void) { return kNumPlugins; }
FACEPLATE_OFX_EXPORT OfxPlugin* OfxGetPlugin(int nth) {
  return nth >= 0 && nth < kNumPlugins ? &gPlugins[nth] : nullptr;
}
FACEPLATE_OFX_EXPORT OfxStatus OfxSetHost(const OfxHost* host) {
  return host && host->fetchSuite ? kOfxStatOK : kOfxStatFailed;
}
