#include "mxguard/message/reported.h"

#include <algorithm>

#include "mxguard/message/mime.h"
#include "mxguard/text.h"

namespace mxguard::message {

namespace {

void add_once(std::vector<std::string>& out, std::string v) {
  if (v.empty() || out.size() >= kMaxReported) return;
  if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
}

bool address_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~.@").find(c) != std::string_view::npos;
}

// Every "local@domain.tld" token of the text, as a bounce's own words name the recipient
// ("<dave@remote.example>: host said: 550 unknown user").
void addresses_in(std::string_view text, std::vector<std::string>& out) {
  std::size_t at = 0;
  while ((at = text.find('@', at)) != std::string_view::npos && out.size() < kMaxReported) {
    std::size_t b = at, e = at + 1;
    while (b > 0 && address_char(text[b - 1]) && text[b - 1] != '@')
      --b;
    while (e < text.size() && address_char(text[e]) && text[e] != '@')
      ++e;
    std::string_view local = text.substr(b, at - b);
    std::string_view domain = text.substr(at + 1, e - at - 1);
    while (!domain.empty() && domain.back() == '.')
      domain.remove_suffix(1);
    while (!local.empty() && local.front() == '.')
      local.remove_prefix(1);
    if (!local.empty() && domain.find('.') != std::string_view::npos && domain.front() != '.')
      add_once(out, ascii_lowercase(std::string(local) + "@" + std::string(domain)));
    at = e;
  }
}

void message_ids_in(std::string_view value, std::vector<std::string>& out) {
  std::size_t lt = 0;
  while ((lt = value.find('<', lt)) != std::string_view::npos) {
    std::string id = extract_msg_id(value.substr(lt));
    if (id.empty()) break;
    add_once(out, id);
    lt = value.find('>', lt);
    if (lt == std::string_view::npos) break;
  }
}

}  // namespace

std::vector<std::string> referenced_message_ids(const MessageReader& msg) {
  std::vector<std::string> ids;
  message_ids_in(msg.header("In-Reply-To"), ids);
  message_ids_in(msg.header("References"), ids);
  return ids;
}

std::vector<std::string> answering_parties(const MessageReader& msg,
                                           std::string_view envelope_sender) {
  std::vector<std::string> out;
  std::string_view sender = trim(envelope_sender);
  if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>')
    sender = sender.substr(1, sender.size() - 2);
  if (sender.find('@') != std::string_view::npos) add_once(out, ascii_lowercase(sender));
  std::string from = extract_address(msg.header("From"));
  if (from.find('@') != std::string::npos) add_once(out, ascii_lowercase(from));
  return out;
}

ReportedFields reported_fields(const MessageReader& msg, const Classification& c) {
  ReportedFields f;
  for (const DsnRecipient& r : c.dsn) {
    add_once(f.recipients, ascii_lowercase(r.final_recipient));
    add_once(f.recipients, ascii_lowercase(r.original_recipient));
  }
  add_once(f.message_ids, c.original.message_id);
  for (std::string& id : referenced_message_ids(msg))
    add_once(f.message_ids, std::move(id));
  std::string_view body = msg.body();
  addresses_in(body.substr(0, std::min(body.size(), kMaxScan)), f.recipients);
  return f;
}

}  // namespace mxguard::message
