// A milter that does nothing: the floor any milter pays, for the end-to-end benchmark
// (tests/bench/e2e_bench.py). Every callback answers SMFIS_CONTINUE at once.
//
//   null_milter -p unix:/path/sock             registers every callback (connect .. close)
//   null_milter -p unix:/path/sock -o connect,rcpt   registers only those (libmilter then
//                                                     negotiates the others away)
//
// No negotiate callback: libmilter asks the MTA not to send the steps whose callback is null,
// as any milter written against the plain API does. Stops on SIGTERM/SIGHUP (libmilter).
#include <libmilter/mfapi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>

namespace {

sfsistat on_connect(SMFICTX*, char*, _SOCK_ADDR*) {
  return SMFIS_CONTINUE;
}
sfsistat on_helo(SMFICTX*, char*) {
  return SMFIS_CONTINUE;
}
sfsistat on_envelope(SMFICTX*, char**) {
  return SMFIS_CONTINUE;
}
sfsistat on_header(SMFICTX*, char*, char*) {
  return SMFIS_CONTINUE;
}
sfsistat on_plain(SMFICTX*) {
  return SMFIS_CONTINUE;
}
sfsistat on_body(SMFICTX*, unsigned char*, size_t) {
  return SMFIS_CONTINUE;
}
sfsistat on_unknown(SMFICTX*, const char*) {
  return SMFIS_CONTINUE;
}

int usage() {
  std::fprintf(stderr,
               "usage: null_milter -p SOCKET [-o connect,helo,mail,rcpt,data,header,"
               "eoh,body,eom,abort,close,unknown]\n");
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  std::set<std::string> only;
  for (int opt; (opt = getopt(argc, argv, "p:o:")) != -1;) {
    if (opt == 'p') {
      socket = optarg;
    } else if (opt == 'o') {
      std::istringstream in(optarg);
      for (std::string step; std::getline(in, step, ',');)
        only.insert(step);
    } else {
      return usage();
    }
  }
  if (socket.empty() || optind != argc) return usage();
  auto on = [&](const char* step) { return only.empty() || only.count(step) > 0; };

  smfiDesc desc{};
  desc.xxfi_name = const_cast<char*>("null_milter");
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = 0;
  desc.xxfi_connect = on("connect") ? on_connect : nullptr;
  desc.xxfi_helo = on("helo") ? on_helo : nullptr;
  desc.xxfi_envfrom = on("mail") ? on_envelope : nullptr;
  desc.xxfi_envrcpt = on("rcpt") ? on_envelope : nullptr;
  desc.xxfi_header = on("header") ? on_header : nullptr;
  desc.xxfi_eoh = on("eoh") ? on_plain : nullptr;
  desc.xxfi_body = on("body") ? on_body : nullptr;
  desc.xxfi_eom = on("eom") ? on_plain : nullptr;
  desc.xxfi_abort = on("abort") ? on_plain : nullptr;
  desc.xxfi_close = on("close") ? on_plain : nullptr;
  desc.xxfi_unknown = on("unknown") ? on_unknown : nullptr;
  desc.xxfi_data = on("data") ? on_plain : nullptr;
  desc.xxfi_negotiate = nullptr;

  umask(0);  // Postfix's smtpd (user postfix) must be able to connect to the socket
  if (socket.starts_with("unix:") || socket.starts_with("local:"))
    unlink(socket.substr(socket.find(':') + 1).c_str());
  if (smfi_setconn(socket.data()) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS) {
    std::fprintf(stderr, "null_milter: cannot use socket %s\n", socket.c_str());
    return 1;
  }
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
