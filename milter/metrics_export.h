// Metrics export: the Prometheus text of mxguard::metrics(), written atomically (temporary
// file + rename) into --metrics-file every few seconds for node_exporter's textfile
// collector, and served on --metrics-listen ADDR:PORT (GET /metrics) with libmicrohttpd.
// Who calls it: milter/main.cpp. open_listener() runs before the daemon detaches, so a port
// in use is reported (exit 78) while the starting shell still waits; start() runs after
// detaching, since threads do not survive fork().
// Threading: one writer thread and libmicrohttpd's own thread; both only read the registry.
#pragma once

#include <memory>
#include <string>

namespace mxguard::milter {

class MetricsExporter {
 public:
  MetricsExporter();
  ~MetricsExporter();

  // Binds and listens on "host:port" or "[v6]:port". False + error when that fails.
  bool open_listener(const std::string& listen, std::string* error);
  // Starts the file writer (when file is not empty) and the HTTP server (when a listener is
  // open). False + error when the server cannot start.
  bool start(const std::string& file, std::string* error);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Appends the daemon's own counters and gauges (adapter Stats) in Prometheus text format;
// the collector main() gives to metrics().
void collect_stats(std::string& out);

}  // namespace mxguard::milter
