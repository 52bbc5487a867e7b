// faceplate-bridge-probe: renders a raw float32 frame file through WorkerClient (for tests).
//
//   faceplate-bridge-probe --worker EXE [--worker-arg A]... --effect ID --width W --height H
//       --in IN.raw [--out OUT.raw] [--params JSON] [--timeout-ms N]
//       [--steps render,render,kill,hang:MS,...] [--leak-fd] [--exit-after]
//
// Steps: render (one frame), thread-render (one frame rendered from a thread that exits right
// after, as a host's render thread does), kill (a slow request during which the worker gets
// SIGKILL: a new worker serves it again), kill-twice (the new worker is killed too: it fails), hang:MS (a test sleep of MS ms, longer than --timeout-ms), drop (the worker closes
// the connection and keeps running), wait:MS (sleep here).
// One JSON line per step on stdout. --leak-fd opens /dev/null without close-on-exec before the
// worker starts (its number is in the start line: the worker must not have it). The first
// line is the start (which may fail; the steps run anyway: they start the worker themselves).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "faceplate/client.h"
#include "faceplate/ipc.h"

int main(int argc, char** argv) {
  faceplate::WorkerOptions opts;
  std::string effect = "org.faceplate.Mask", in_path, out_path, params = "{}", steps = "render";
  int w = 0, h = 0, timeout_ms = 120000, leaked = -1;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--leak-fd") {
      leaked = ::open("/dev/null", O_RDONLY);  // inheritable on purpose
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "faceplate-bridge-probe: %s needs a value\n", a.c_str());
      return 2;
    }
    std::string v = argv[i + 1];
    if (a == "--worker") opts.worker_exe = v;
    else if (a == "--worker-arg") opts.extra_args.push_back(v);
    else if (a == "--effect") effect = v;
    else if (a == "--width") w = std::stoi(v);
    else if (a == "--height") h = std::stoi(v);
    else if (a == "--in") in_path = v;
    else if (a == "--out") out_path = v;
    else if (a == "--params") params = v;
    else if (a == "--timeout-ms") timeout_ms = std::stoi(v);
    else if (a == "--steps") steps = v;
    else {
      std::fprintf(stderr, "faceplate-bridge-probe: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<float> src(static_cast<std::size_t>(w) * h * 4), dst(src.size());
  std::ifstream in(in_path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(src.data()), static_cast<std::streamsize>(src.size() * 4))) {
    std::fprintf(stderr, "faceplate-bridge-probe: cannot read %zu floats from %s\n", src.size(),
                 in_path.c_str());
    return 2;
  }
  faceplate::WorkerClient client(opts);
  client.set_request_timeout_ms(timeout_ms);
  std::string info, err;
  if (!client.start(info, err)) {
    std::printf("{\"step\": \"start\", \"ok\": false, \"spawns\": %d, \"error\": %s}\n",
                client.spawns(), faceplate::ipc::json_quote(err).c_str());
  } else {
    std::printf("{\"step\": \"start\", \"ok\": true, \"dir\": %s, \"pid\": %d, "
                "\"leaked_fd\": %d, \"worker\": %s}\n",
                faceplate::ipc::json_quote(client.socket_dir()).c_str(), client.worker_pid(),
                leaked, info.c_str());
  }
  std::fflush(stdout);
  std::stringstream ss(steps);
  std::string step;
  int failures = 0;
  while (std::getline(ss, step, ',')) {
    auto t0 = std::chrono::steady_clock::now();
    bool ok = false;
    faceplate::RenderReply rep;
    err.clear();
    int pid_before = client.worker_pid();
    if (step == "thread-render") {
      std::thread t([&] { ok = client.render(effect, src.data(), w, h, params, dst.data(), rep, err); });
      t.join();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the thread is gone
    } else if (step.rfind("wait:", 0) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(step.substr(5))));
      ok = true;
    } else if (step == "render") {
      ok = client.render(effect, src.data(), w, h, params, dst.data(), rep, err);
      if (ok && !out_path.empty()) {
        std::ofstream o(out_path, std::ios::binary);
        o.write(reinterpret_cast<const char*>(dst.data()),
                static_cast<std::streamsize>(dst.size() * 4));
      }
    } else if (step == "kill" || step == "kill-twice") {
      // a slow request during which the worker (and, for kill-twice, its replacement) is killed
      const int times = step == "kill" ? 1 : 2;
      std::thread killer([&client, times] {
        for (int k = 0; k < times; ++k) {
          int pid = client.worker_pid();
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          for (int i = 0; i < 200 && (pid = client.worker_pid()) <= 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          if (pid > 0) ::kill(pid, SIGKILL);
          std::this_thread::sleep_for(std::chrono::milliseconds(k + 1 < times ? 600 : 0));
        }
      });
      ok = client.sleep_for_test(times == 1 ? 1500 : 3000, err);
      rep.recovered = client.last_recovery();
      killer.join();
    } else if (step == "drop") {
      ok = client.drop_for_test(err);
    } else if (step.rfind("hang:", 0) == 0) {
      ok = client.sleep_for_test(std::stoi(step.substr(5)), err);
    } else {
      err = "unknown step " + step;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count();
    failures += ok ? 0 : 1;
    std::printf("{\"step\": %s, \"ok\": %s, \"ms\": %.3f, \"python_ms\": %.3f, \"status\": %s, "
                "\"faces\": %lld, \"pid\": %d, \"pid_after\": %d, \"restarts\": %d, "
                "\"spawns\": %d, \"recovered\": %s, \"error\": %s}\n",
                faceplate::ipc::json_quote(step).c_str(), ok ? "true" : "false", ms,
                rep.python_ms, faceplate::ipc::json_quote(rep.status).c_str(), rep.faces,
                pid_before, client.worker_pid(), client.restarts(), client.spawns(),
                faceplate::ipc::json_quote(rep.recovered).c_str(),
                faceplate::ipc::json_quote(err).c_str());
    std::fflush(stdout);
  }
  return 0;
}
