// Faceplate's own declarations of the OpenFX C ABI (image effect API 1, suites as listed in
// docs/openfx-notes.md §1). Written from the documented facts (names, string values, struct
// layouts and function-pointer order); no OpenFX SDK code is copied. Shared by the plugin shell
// and the C++ test host. Everything that crosses the ABI is a plain C type inside extern "C".
//
// Conventions of the ABI (not of this header): images are bottom-up, the data pointer is the
// bottom-left pixel, rowBytes may be negative; rects are half-open (x1 <= x < x2).
#pragma once

#include <climits>
#include <cstdarg>
#include <cstddef>

#if defined(_WIN32)
#define FACEPLATE_OFX_EXPORT extern "C" __declspec(dllexport)
#else
#define FACEPLATE_OFX_EXPORT extern "C" __attribute__((visibility("default")))
#endif

extern "C" {

// ---- opaque handles (pointers to incomplete structs; each side defines its own struct) ----
typedef struct OfxPropertySetStruct* OfxPropertySetHandle;
typedef struct OfxImageEffectStruct* OfxImageEffectHandle;
typedef struct OfxImageClipStruct* OfxImageClipHandle;
typedef struct OfxImageMemoryStruct* OfxImageMemoryHandle;
typedef struct OfxParamStruct* OfxParamHandle;
typedef struct OfxParamSetStruct* OfxParamSetHandle;
typedef struct OfxMutex* OfxMutexHandle;
typedef struct OfxInteract* OfxInteractHandle;

typedef int OfxStatus;
typedef double OfxTime;

typedef struct OfxHost {
  OfxPropertySetHandle host;
  const void* (*fetchSuite)(OfxPropertySetHandle host, const char* suiteName, int suiteVersion);
} OfxHost;

typedef OfxStatus(OfxPluginEntryPoint)(const char* action, const void* handle,
                                       OfxPropertySetHandle inArgs, OfxPropertySetHandle outArgs);

typedef struct OfxPlugin {
  const char* pluginApi;  // kOfxImageEffectPluginApi
  int apiVersion;         // kOfxImageEffectPluginApiVersion
  const char* pluginIdentifier;
  unsigned int pluginVersionMajor;
  unsigned int pluginVersionMinor;
  void (*setHost)(OfxHost* host);
  OfxPluginEntryPoint* mainEntry;
} OfxPlugin;

// Exported by a plugin binary (OfxSetHost is optional).
typedef int (*OfxGetNumberOfPluginsFn)(void);
typedef OfxPlugin* (*OfxGetPluginFn)(int nth);
typedef OfxStatus (*OfxSetHostFn)(const OfxHost* host);

typedef struct OfxRangeI { int min, max; } OfxRangeI;
typedef struct OfxRangeD { double min, max; } OfxRangeD;
typedef struct OfxPointI { int x, y; } OfxPointI;
typedef struct OfxPointD { double x, y; } OfxPointD;
typedef struct OfxRectI { int x1, y1, x2, y2; } OfxRectI;
typedef struct OfxRectD { double x1, y1, x2, y2; } OfxRectD;

typedef void(OfxThreadFunctionV1)(unsigned int threadIndex, unsigned int threadMax,
                                  void* customArg);

// ---- suites (function-pointer order is ABI) ----
typedef struct OfxPropertySuiteV1 {
  OfxStatus (*propSetPointer)(OfxPropertySetHandle, const char* property, int index, void* value);
  OfxStatus (*propSetString)(OfxPropertySetHandle, const char* property, int index,
                             const char* value);
  OfxStatus (*propSetDouble)(OfxPropertySetHandle, const char* property, int index, double value);
  OfxStatus (*propSetInt)(OfxPropertySetHandle, const char* property, int index, int value);
  OfxStatus (*propSetPointerN)(OfxPropertySetHandle, const char* property, int count,
                               void* const* value);
  OfxStatus (*propSetStringN)(OfxPropertySetHandle, const char* property, int count,
                              const char* const* value);
  OfxStatus (*propSetDoubleN)(OfxPropertySetHandle, const char* property, int count,
                              const double* value);
  OfxStatus (*propSetIntN)(OfxPropertySetHandle, const char* property, int count,
                           const int* value);
  OfxStatus (*propGetPointer)(OfxPropertySetHandle, const char* property, int index, void** value);
  OfxStatus (*propGetString)(OfxPropertySetHandle, const char* property, int index, char** value);
  OfxStatus (*propGetDouble)(OfxPropertySetHandle, const char* property, int index, double* value);
  OfxStatus (*propGetInt)(OfxPropertySetHandle, const char* property, int index, int* value);
  OfxStatus (*propGetPointerN)(OfxPropertySetHandle, const char* property, int count,
                               void** value);
  OfxStatus (*propGetStringN)(OfxPropertySetHandle, const char* property, int count, char** value);
  OfxStatus (*propGetDoubleN)(OfxPropertySetHandle, const char* property, int count,
                              double* value);
  OfxStatus (*propGetIntN)(OfxPropertySetHandle, const char* property, int count, int* value);
  OfxStatus (*propReset)(OfxPropertySetHandle, const char* property);
  OfxStatus (*propGetDimension)(OfxPropertySetHandle, const char* property, int* count);
} OfxPropertySuiteV1;

typedef struct OfxImageEffectSuiteV1 {
  OfxStatus (*getPropertySet)(OfxImageEffectHandle imageEffect, OfxPropertySetHandle* propHandle);
  OfxStatus (*getParamSet)(OfxImageEffectHandle imageEffect, OfxParamSetHandle* paramSet);
  OfxStatus (*clipDefine)(OfxImageEffectHandle imageEffect, const char* name,
                          OfxPropertySetHandle* propertySet);
  OfxStatus (*clipGetHandle)(OfxImageEffectHandle imageEffect, const char* name,
                             OfxImageClipHandle* clip, OfxPropertySetHandle* propertySet);
  OfxStatus (*clipGetPropertySet)(OfxImageClipHandle clip, OfxPropertySetHandle* propHandle);
  OfxStatus (*clipGetImage)(OfxImageClipHandle clip, OfxTime time, const OfxRectD* region,
                            OfxPropertySetHandle* imageHandle);
  OfxStatus (*clipReleaseImage)(OfxPropertySetHandle imageHandle);
  OfxStatus (*clipGetRegionOfDefinition)(OfxImageClipHandle clip, OfxTime time, OfxRectD* bounds);
  int (*abort)(OfxImageEffectHandle imageEffect);
  OfxStatus (*imageMemoryAlloc)(OfxImageEffectHandle instanceHandle, size_t nBytes,
                                OfxImageMemoryHandle* memoryHandle);
  OfxStatus (*imageMemoryFree)(OfxImageMemoryHandle memoryHandle);
  OfxStatus (*imageMemoryLock)(OfxImageMemoryHandle memoryHandle, void** returnedPtr);
  OfxStatus (*imageMemoryUnlock)(OfxImageMemoryHandle memoryHandle);
} OfxImageEffectSuiteV1;

// paramGetValue*/paramSetValue* are C varargs: Integer/Boolean/Choice -> int, Double -> double,
// 2D/3D -> 2 or 3 values, RGB/RGBA -> 3 or 4 doubles, String/Custom/StrChoice -> char** (get) or
// const char* (set). Gets take pointers, sets take values.
typedef struct OfxParameterSuiteV1 {
  OfxStatus (*paramDefine)(OfxParamSetHandle paramSet, const char* paramType, const char* name,
                           OfxPropertySetHandle* propertySet);
  OfxStatus (*paramGetHandle)(OfxParamSetHandle paramSet, const char* name, OfxParamHandle* param,
                              OfxPropertySetHandle* propertySet);
  OfxStatus (*paramSetGetPropertySet)(OfxParamSetHandle paramSet,
                                      OfxPropertySetHandle* propHandle);
  OfxStatus (*paramGetPropertySet)(OfxParamHandle param, OfxPropertySetHandle* propHandle);
  OfxStatus (*paramGetValue)(OfxParamHandle paramHandle, ...);
  OfxStatus (*paramGetValueAtTime)(OfxParamHandle paramHandle, OfxTime time, ...);
  OfxStatus (*paramGetDerivative)(OfxParamHandle paramHandle, OfxTime time, ...);
  OfxStatus (*paramGetIntegral)(OfxParamHandle paramHandle, OfxTime time1, OfxTime time2, ...);
  OfxStatus (*paramSetValue)(OfxParamHandle paramHandle, ...);
  OfxStatus (*paramSetValueAtTime)(OfxParamHandle paramHandle, OfxTime time, ...);
  OfxStatus (*paramGetNumKeys)(OfxParamHandle paramHandle, unsigned int* numberOfKeys);
  OfxStatus (*paramGetKeyTime)(OfxParamHandle paramHandle, unsigned int nthKey, OfxTime* time);
  OfxStatus (*paramGetKeyIndex)(OfxParamHandle paramHandle, OfxTime time, int direction,
                                int* index);
  OfxStatus (*paramDeleteKey)(OfxParamHandle paramHandle, OfxTime time);
  OfxStatus (*paramDeleteAllKeys)(OfxParamHandle paramHandle);
  OfxStatus (*paramCopy)(OfxParamHandle paramTo, OfxParamHandle paramFrom, OfxTime dstOffset,
                         const OfxRangeD* frameRange);
  OfxStatus (*paramEditBegin)(OfxParamSetHandle paramSet, const char* name);
  OfxStatus (*paramEditEnd)(OfxParamSetHandle paramSet);
} OfxParameterSuiteV1;

typedef struct OfxMemorySuiteV1 {
  OfxStatus (*memoryAlloc)(void* handle, size_t nBytes, void** allocatedData);
  OfxStatus (*memoryFree)(void* allocatedData);
} OfxMemorySuiteV1;

typedef struct OfxMultiThreadSuiteV1 {
  OfxStatus (*multiThread)(OfxThreadFunctionV1 func, unsigned int nThreads, void* customArg);
  OfxStatus (*multiThreadNumCPUs)(unsigned int* nCPUs);
  OfxStatus (*multiThreadIndex)(unsigned int* threadIndex);
  int (*multiThreadIsSpawnedThread)(void);
  OfxStatus (*mutexCreate)(OfxMutexHandle* mutex, int lockCount);
  OfxStatus (*mutexDestroy)(const OfxMutexHandle mutex);
  OfxStatus (*mutexLock)(const OfxMutexHandle mutex);
  OfxStatus (*mutexUnLock)(const OfxMutexHandle mutex);
  OfxStatus (*mutexTryLock)(const OfxMutexHandle mutex);
} OfxMultiThreadSuiteV1;

typedef struct OfxMessageSuiteV1 {
  OfxStatus (*message)(void* handle, const char* messageType, const char* messageId,
                       const char* format, ...);
} OfxMessageSuiteV1;

// A V2 struct starts with the V1 layout, so it is also a valid V1 struct.
typedef struct OfxMessageSuiteV2 {
  OfxStatus (*message)(void* handle, const char* messageType, const char* messageId,
                       const char* format, ...);
  OfxStatus (*setPersistentMessage)(void* handle, const char* messageType, const char* messageId,
                                    const char* format, ...);
  OfxStatus (*clearPersistentMessage)(void* handle);
} OfxMessageSuiteV2;

typedef struct OfxProgressSuiteV1 {
  OfxStatus (*progressStart)(void* effectInstance, const char* label);
  OfxStatus (*progressUpdate)(void* effectInstance, double progress);
  OfxStatus (*progressEnd)(void* effectInstance);
} OfxProgressSuiteV1;

typedef struct OfxProgressSuiteV2 {
  OfxStatus (*progressStart)(void* effectInstance, const char* message, const char* messageId);
  OfxStatus (*progressUpdate)(void* effectInstance, double progress);
  OfxStatus (*progressEnd)(void* effectInstance);
} OfxProgressSuiteV2;

typedef struct OfxTimeLineSuiteV1 {
  OfxStatus (*getTime)(void* instance, double* time);
  OfxStatus (*gotoTime)(void* instance, double time);
  OfxStatus (*getTimeBounds)(void* instance, double* firstTime, double* lastTime);
} OfxTimeLineSuiteV1;

typedef struct OfxInteractSuiteV1 {
  OfxStatus (*interactSwapBuffers)(OfxInteractHandle interactInstance);
  OfxStatus (*interactRedraw)(OfxInteractHandle interactInstance);
  OfxStatus (*interactGetPropertySet)(OfxInteractHandle interactInstance,
                                      OfxPropertySetHandle* property);
} OfxInteractSuiteV1;

}  // extern "C"

namespace faceplate::ofx {

// ---- status codes ----
constexpr OfxStatus kOfxStatOK = 0;
constexpr OfxStatus kOfxStatFailed = 1;
constexpr OfxStatus kOfxStatErrFatal = 2;
constexpr OfxStatus kOfxStatErrUnknown = 3;
constexpr OfxStatus kOfxStatErrMissingHostFeature = 4;
constexpr OfxStatus kOfxStatErrUnsupported = 5;
constexpr OfxStatus kOfxStatErrExists = 6;
constexpr OfxStatus kOfxStatErrFormat = 7;
constexpr OfxStatus kOfxStatErrMemory = 8;
constexpr OfxStatus kOfxStatErrBadHandle = 9;
constexpr OfxStatus kOfxStatErrBadIndex = 10;
constexpr OfxStatus kOfxStatErrValue = 11;
constexpr OfxStatus kOfxStatReplyYes = 12;
constexpr OfxStatus kOfxStatReplyNo = 13;
constexpr OfxStatus kOfxStatReplyDefault = 14;
constexpr OfxStatus kOfxStatUnlicensed = 15;
constexpr OfxStatus kOfxStatErrImageFormat = 1000;

constexpr int kOfxFlagInfiniteMax = INT_MAX;
constexpr int kOfxFlagInfiniteMin = INT_MIN;

// ---- API ----
constexpr const char* kOfxImageEffectPluginApi = "OfxImageEffectPluginAPI";
constexpr int kOfxImageEffectPluginApiVersion = 1;

// ---- suite names ----
constexpr const char* kOfxPropertySuite = "OfxPropertySuite";
constexpr const char* kOfxImageEffectSuite = "OfxImageEffectSuite";
constexpr const char* kOfxParameterSuite = "OfxParameterSuite";
constexpr const char* kOfxMemorySuite = "OfxMemorySuite";
constexpr const char* kOfxMultiThreadSuite = "OfxMultiThreadSuite";
constexpr const char* kOfxMessageSuite = "OfxMessageSuite";
constexpr const char* kOfxProgressSuite = "OfxProgressSuite";
constexpr const char* kOfxTimeLineSuite = "OfxTimeLineSuite";
constexpr const char* kOfxInteractSuite = "OfxInteractSuite";

// ---- actions ----
constexpr const char* kOfxActionLoad = "OfxActionLoad";
constexpr const char* kOfxActionDescribe = "OfxActionDescribe";
constexpr const char* kOfxActionUnload = "OfxActionUnload";
constexpr const char* kOfxActionPurgeCaches = "OfxActionPurgeCaches";
constexpr const char* kOfxActionSyncPrivateData = "OfxActionSyncPrivateData";
constexpr const char* kOfxActionCreateInstance = "OfxActionCreateInstance";
constexpr const char* kOfxActionDestroyInstance = "OfxActionDestroyInstance";
constexpr const char* kOfxActionInstanceChanged = "OfxActionInstanceChanged";
constexpr const char* kOfxActionBeginInstanceChanged = "OfxActionBeginInstanceChanged";
constexpr const char* kOfxActionEndInstanceChanged = "OfxActionEndInstanceChanged";
constexpr const char* kOfxActionBeginInstanceEdit = "OfxActionBeginInstanceEdit";
constexpr const char* kOfxActionEndInstanceEdit = "OfxActionEndInstanceEdit";
constexpr const char* kOfxImageEffectActionDescribeInContext =
    "OfxImageEffectActionDescribeInContext";
constexpr const char* kOfxImageEffectActionGetRegionOfDefinition =
    "OfxImageEffectActionGetRegionOfDefinition";
constexpr const char* kOfxImageEffectActionGetRegionsOfInterest =
    "OfxImageEffectActionGetRegionsOfInterest";
constexpr const char* kOfxImageEffectActionGetTimeDomain = "OfxImageEffectActionGetTimeDomain";
constexpr const char* kOfxImageEffectActionGetFramesNeeded = "OfxImageEffectActionGetFramesNeeded";
constexpr const char* kOfxImageEffectActionGetClipPreferences =
    "OfxImageEffectActionGetClipPreferences";
constexpr const char* kOfxImageEffectActionIsIdentity = "OfxImageEffectActionIsIdentity";
constexpr const char* kOfxImageEffectActionRender = "OfxImageEffectActionRender";
constexpr const char* kOfxImageEffectActionBeginSequenceRender =
    "OfxImageEffectActionBeginSequenceRender";
constexpr const char* kOfxImageEffectActionEndSequenceRender =
    "OfxImageEffectActionEndSequenceRender";
constexpr const char* kOfxInteractActionDraw = "OfxInteractActionDraw";
constexpr const char* kOfxInteractActionPenMotion = "OfxInteractActionPenMotion";
constexpr const char* kOfxInteractActionPenDown = "OfxInteractActionPenDown";
constexpr const char* kOfxInteractActionPenUp = "OfxInteractActionPenUp";
constexpr const char* kOfxInteractActionKeyDown = "OfxInteractActionKeyDown";
constexpr const char* kOfxInteractActionKeyUp = "OfxInteractActionKeyUp";
constexpr const char* kOfxInteractActionKeyRepeat = "OfxInteractActionKeyRepeat";
constexpr const char* kOfxInteractActionGainFocus = "OfxInteractActionGainFocus";
constexpr const char* kOfxInteractActionLoseFocus = "OfxInteractActionLoseFocus";

// ---- contexts ----
constexpr const char* kOfxImageEffectContextFilter = "OfxImageEffectContextFilter";
constexpr const char* kOfxImageEffectContextGeneral = "OfxImageEffectContextGeneral";
constexpr const char* kOfxImageEffectContextGenerator = "OfxImageEffectContextGenerator";
constexpr const char* kOfxImageEffectContextTransition = "OfxImageEffectContextTransition";
constexpr const char* kOfxImageEffectContextPaint = "OfxImageEffectContextPaint";
constexpr const char* kOfxImageEffectContextRetimer = "OfxImageEffectContextRetimer";

// ---- generic properties ----
constexpr const char* kOfxPropName = "OfxPropName";
constexpr const char* kOfxPropLabel = "OfxPropLabel";
constexpr const char* kOfxPropShortLabel = "OfxPropShortLabel";
constexpr const char* kOfxPropLongLabel = "OfxPropLongLabel";
constexpr const char* kOfxPropPluginDescription = "OfxPropPluginDescription";
constexpr const char* kOfxPropVersion = "OfxPropVersion";
constexpr const char* kOfxPropVersionLabel = "OfxPropVersionLabel";
constexpr const char* kOfxPropInstanceData = "OfxPropInstanceData";
constexpr const char* kOfxPropAPIVersion = "OfxPropAPIVersion";
constexpr const char* kOfxPropTime = "OfxPropTime";
constexpr const char* kOfxPropIsInteractive = "OfxPropIsInteractive";
constexpr const char* kOfxPluginPropFilePath = "OfxPluginPropFilePath";
constexpr const char* kOfxPropIcon = "OfxPropIcon";
constexpr const char* kOfxPropType = "OfxPropType";
constexpr const char* kOfxPropChangeReason = "OfxPropChangeReason";
constexpr const char* kOfxTypeParameter = "OfxTypeParameter";
constexpr const char* kOfxTypeClip = "OfxTypeClip";
constexpr const char* kOfxTypeImageEffectHost = "OfxTypeImageEffectHost";
constexpr const char* kOfxTypeImageEffect = "OfxTypeImageEffect";
constexpr const char* kOfxTypeImageEffectInstance = "OfxTypeImageEffectInstance";
constexpr const char* kOfxTypeImage = "OfxTypeImage";
constexpr const char* kOfxChangeUserEdited = "OfxChangeUserEdited";
constexpr const char* kOfxChangePluginEdited = "OfxChangePluginEdited";
constexpr const char* kOfxChangeTime = "OfxChangeTime";

// ---- image effect properties ----
constexpr const char* kOfxImageEffectPropContext = "OfxImageEffectPropContext";
constexpr const char* kOfxImageEffectPropSupportedContexts = "OfxImageEffectPropSupportedContexts";
constexpr const char* kOfxImageEffectPropPixelDepth = "OfxImageEffectPropPixelDepth";
constexpr const char* kOfxImageEffectPropComponents = "OfxImageEffectPropComponents";
constexpr const char* kOfxImageEffectPropPreMultiplication = "OfxImageEffectPropPreMultiplication";
constexpr const char* kOfxImageEffectPropSupportedPixelDepths =
    "OfxImageEffectPropSupportedPixelDepths";
constexpr const char* kOfxImageEffectPropSupportedComponents =
    "OfxImageEffectPropSupportedComponents";
constexpr const char* kOfxImageEffectPropSupportsMultipleClipDepths =
    "OfxImageEffectPropMultipleClipDepths";  // the value differs from the macro name
constexpr const char* kOfxImageEffectPropSupportsMultipleClipPARs =
    "OfxImageEffectPropSupportsMultipleClipPARs";
constexpr const char* kOfxImageEffectPluginRenderThreadSafety =
    "OfxImageEffectPluginRenderThreadSafety";
constexpr const char* kOfxImageEffectRenderUnsafe = "OfxImageEffectRenderUnsafe";
constexpr const char* kOfxImageEffectRenderInstanceSafe = "OfxImageEffectRenderInstanceSafe";
constexpr const char* kOfxImageEffectRenderFullySafe = "OfxImageEffectRenderFullySafe";
constexpr const char* kOfxImageEffectPluginPropHostFrameThreading =
    "OfxImageEffectPluginPropHostFrameThreading";
constexpr const char* kOfxImageEffectPropSupportsTiles = "OfxImageEffectPropSupportsTiles";
constexpr const char* kOfxImageEffectPropSupportsMultiResolution =
    "OfxImageEffectPropSupportsMultiResolution";
constexpr const char* kOfxImageEffectPropTemporalClipAccess =
    "OfxImageEffectPropTemporalClipAccess";
constexpr const char* kOfxImageEffectInstancePropSequentialRender =
    "OfxImageEffectInstancePropSequentialRender";
constexpr const char* kOfxImageEffectPluginPropSingleInstance =
    "OfxImageEffectPluginPropSingleInstance";
constexpr const char* kOfxImageEffectPluginPropGrouping = "OfxImageEffectPluginPropGrouping";
constexpr const char* kOfxImageEffectPluginPropOverlayInteractV1 =
    "OfxImageEffectPluginPropOverlayInteractV1";
constexpr const char* kOfxImageEffectPropRenderScale = "OfxImageEffectPropRenderScale";
constexpr const char* kOfxImageEffectPropRenderWindow = "OfxImageEffectPropRenderWindow";
constexpr const char* kOfxImageEffectPropFrameRange = "OfxImageEffectPropFrameRange";
constexpr const char* kOfxImageEffectPropFrameStep = "OfxImageEffectPropFrameStep";
constexpr const char* kOfxImageEffectPropFieldToRender = "OfxImageEffectPropFieldToRender";
constexpr const char* kOfxImageEffectPropSequentialRenderStatus =
    "OfxImageEffectPropSequentialRenderStatus";
constexpr const char* kOfxImageEffectPropInteractiveRenderStatus =
    "OfxImageEffectPropInteractiveRenderStatus";
constexpr const char* kOfxImageEffectPropRenderQualityDraft =
    "OfxImageEffectPropRenderQualityDraft";
constexpr const char* kOfxImageEffectPropRegionOfDefinition =
    "OfxImageEffectPropRegionOfDefinition";
constexpr const char* kOfxImageEffectPropRegionOfInterest = "OfxImageEffectPropRegionOfInterest";
constexpr const char* kOfxImageEffectPropProjectPixelAspectRatio =
    "OfxImageEffectPropPixelAspectRatio";  // the value differs from the macro name
constexpr const char* kOfxImageEffectFrameVarying = "OfxImageEffectFrameVarying";
constexpr const char* kOfxImageEffectHostPropIsBackground = "OfxImageEffectHostPropIsBackground";
constexpr const char* kOfxImageEffectHostPropNativeOrigin = "OfxImageEffectHostPropNativeOrigin";
constexpr const char* kOfxHostNativeOriginBottomLeft =
    "kOfxImageEffectHostPropNativeOriginBottomLeft";  // with the k
constexpr const char* kOfxPluginPropParamPageOrder = "OfxPluginPropParamPageOrder";
constexpr const char* kOfxFieldNone = "OfxFieldNone";

// ---- depths, components, premultiplication ----
constexpr const char* kOfxBitDepthNone = "OfxBitDepthNone";
constexpr const char* kOfxBitDepthByte = "OfxBitDepthByte";
constexpr const char* kOfxBitDepthShort = "OfxBitDepthShort";
constexpr const char* kOfxBitDepthHalf = "OfxBitDepthHalf";
constexpr const char* kOfxBitDepthFloat = "OfxBitDepthFloat";
constexpr const char* kOfxImageComponentNone = "OfxImageComponentNone";
constexpr const char* kOfxImageComponentRGBA = "OfxImageComponentRGBA";
constexpr const char* kOfxImageComponentRGB = "OfxImageComponentRGB";
constexpr const char* kOfxImageComponentAlpha = "OfxImageComponentAlpha";
constexpr const char* kOfxImageOpaque = "OfxImageOpaque";
constexpr const char* kOfxImageAlphaPremultiplied = "OfxImageAlphaPremultiplied";
constexpr const char* kOfxImageAlphaUnPremultiplied = "OfxImageAlphaUnPremultiplied";

// ---- images ----
constexpr const char* kOfxImagePropData = "OfxImagePropData";
constexpr const char* kOfxImagePropBounds = "OfxImagePropBounds";
constexpr const char* kOfxImagePropRegionOfDefinition = "OfxImagePropRegionOfDefinition";
constexpr const char* kOfxImagePropRowBytes = "OfxImagePropRowBytes";
constexpr const char* kOfxImagePropPixelAspectRatio = "OfxImagePropPixelAspectRatio";
constexpr const char* kOfxImagePropField = "OfxImagePropField";
constexpr const char* kOfxImagePropUniqueIdentifier = "OfxImagePropUniqueIdentifier";

// ---- clips ----
constexpr const char* kOfxImageClipPropOptional = "OfxImageClipPropOptional";
constexpr const char* kOfxImageClipPropIsMask = "OfxImageClipPropIsMask";
constexpr const char* kOfxImageClipPropConnected = "OfxImageClipPropConnected";
constexpr const char* kOfxImageClipPropUnmappedPixelDepth = "OfxImageClipPropUnmappedPixelDepth";
constexpr const char* kOfxImageClipPropUnmappedComponents = "OfxImageClipPropUnmappedComponents";
constexpr const char* kOfxImageClipPropRoIPrefix = "OfxImageClipPropRoI_";
constexpr const char* kOfxImageClipPropFrameRangePrefix = "OfxImageClipPropFrameRange_";
constexpr const char* kOfxImageClipPropComponentsPrefix = "OfxImageClipPropComponents_";
constexpr const char* kOfxImageClipPropDepthPrefix = "OfxImageClipPropDepth_";
constexpr const char* kOfxImageClipPropPARPrefix = "OfxImageClipPropPAR_";
constexpr const char* kOfxImageEffectOutputClipName = "Output";
constexpr const char* kOfxImageEffectSimpleSourceClipName = "Source";

// ---- params ----
constexpr const char* kOfxParamTypeInteger = "OfxParamTypeInteger";
constexpr const char* kOfxParamTypeDouble = "OfxParamTypeDouble";
constexpr const char* kOfxParamTypeBoolean = "OfxParamTypeBoolean";
constexpr const char* kOfxParamTypeChoice = "OfxParamTypeChoice";
constexpr const char* kOfxParamTypeStrChoice = "OfxParamTypeStrChoice";
constexpr const char* kOfxParamTypeRGBA = "OfxParamTypeRGBA";
constexpr const char* kOfxParamTypeRGB = "OfxParamTypeRGB";
constexpr const char* kOfxParamTypeDouble2D = "OfxParamTypeDouble2D";
constexpr const char* kOfxParamTypeInteger2D = "OfxParamTypeInteger2D";
constexpr const char* kOfxParamTypeDouble3D = "OfxParamTypeDouble3D";
constexpr const char* kOfxParamTypeInteger3D = "OfxParamTypeInteger3D";
constexpr const char* kOfxParamTypeString = "OfxParamTypeString";
constexpr const char* kOfxParamTypeCustom = "OfxParamTypeCustom";
constexpr const char* kOfxParamTypeBytes = "OfxParamTypeBytes";
constexpr const char* kOfxParamTypeGroup = "OfxParamTypeGroup";
constexpr const char* kOfxParamTypePage = "OfxParamTypePage";
constexpr const char* kOfxParamTypePushButton = "OfxParamTypePushButton";
constexpr const char* kOfxParamPropType = "OfxParamPropType";
constexpr const char* kOfxParamPropDefault = "OfxParamPropDefault";
constexpr const char* kOfxParamPropMin = "OfxParamPropMin";
constexpr const char* kOfxParamPropMax = "OfxParamPropMax";
constexpr const char* kOfxParamPropDisplayMin = "OfxParamPropDisplayMin";
constexpr const char* kOfxParamPropDisplayMax = "OfxParamPropDisplayMax";
constexpr const char* kOfxParamPropIncrement = "OfxParamPropIncrement";
constexpr const char* kOfxParamPropDigits = "OfxParamPropDigits";
constexpr const char* kOfxParamPropHint = "OfxParamPropHint";
constexpr const char* kOfxParamPropScriptName = "OfxParamPropScriptName";
constexpr const char* kOfxParamPropAnimates = "OfxParamPropAnimates";
constexpr const char* kOfxParamPropEvaluateOnChange = "OfxParamPropEvaluateOnChange";
constexpr const char* kOfxParamPropSecret = "OfxParamPropSecret";
constexpr const char* kOfxParamPropEnabled = "OfxParamPropEnabled";
constexpr const char* kOfxParamPropPersistant = "OfxParamPropPersistant";  // (sic)
constexpr const char* kOfxParamPropCanUndo = "OfxParamPropCanUndo";
constexpr const char* kOfxParamPropParent = "OfxParamPropParent";
constexpr const char* kOfxParamPropPageChild = "OfxParamPropPageChild";
constexpr const char* kOfxParamPropGroupOpen = "OfxParamPropGroupOpen";
constexpr const char* kOfxParamPropChoiceOption = "OfxParamPropChoiceOption";
constexpr const char* kOfxParamPropStringMode = "OfxParamPropStringMode";
constexpr const char* kOfxParamStringIsFilePath = "OfxParamStringIsFilePath";
constexpr const char* kOfxParamStringIsSingleLine = "OfxParamStringIsSingleLine";
constexpr const char* kOfxParamPropDoubleType = "OfxParamPropDoubleType";
constexpr const char* kOfxParamDoubleTypeXYAbsolute = "OfxParamDoubleTypeXYAbsolute";
constexpr const char* kOfxParamPropDefaultCoordinateSystem =
    "OfxParamPropDefaultCoordinateSystem";
constexpr const char* kOfxParamCoordinatesCanonical = "OfxParamCoordinatesCanonical";
constexpr const char* kOfxParamCoordinatesNormalised = "OfxParamCoordinatesNormalised";
constexpr const char* kOfxParamPropCacheInvalidation = "OfxParamPropCacheInvalidation";
constexpr const char* kOfxParamPropPluginMayWrite = "OfxParamPropPluginMayWrite";
constexpr const char* kOfxParamPropUseHostOverlayHandle =
    "kOfxParamPropUseHostOverlayHandle";  // with the k

// ---- messages ----
constexpr const char* kOfxMessageFatal = "OfxMessageFatal";
constexpr const char* kOfxMessageError = "OfxMessageError";
constexpr const char* kOfxMessageWarning = "OfxMessageWarning";
constexpr const char* kOfxMessageMessage = "OfxMessageMessage";
constexpr const char* kOfxMessageLog = "OfxMessageLog";
constexpr const char* kOfxMessageQuestion = "OfxMessageQuestion";

}  // namespace faceplate::ofx
