#pragma once

// The domain edit of `sockhook annotate`: one <sockhook:socket> added, updated or removed in a
// domain's XML, with the environment and audio elements QEMU needs, undone byte for byte.
// Pure: no libvirt, no users, no files (commands/annotate.hpp does those); the document
// itself, kept byte for byte, is commands/domain_document.hpp.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/plugin.hpp"
#include "plan/plan.hpp"
#include "sys/users.hpp"

namespace sockhook {

/// One `sockhook annotate` request: the socket to add, update or remove.
struct AnnotateRequest {
  std::string plugin;                 ///< required to add; to remove, the plugin or `name`
  std::string owner;                  ///< required to add, as the user wrote it
  std::optional<std::string> method;  ///< written only when given
  bool required = true;               ///< required="no" is written only when false
  std::optional<int> wait_seconds;    ///< written only when given
  bool capture = false;               ///< capture="yes" is written only when true
  std::string name;                   ///< empty: the plugin's name
  bool remove = false;
};

/// What the XML transform needs besides the XML; resolved by the caller, so that the
/// transform itself is pure (and testable without libvirt, users or files).
struct AnnotateContext {
  const Plugin* plugin = nullptr;     ///< the installed plugin (adding only)
  std::optional<User> owner;          ///< the resolved owner (adding only)
  unsigned long libvirt_version = 0;  ///< decides native <audio> attribute vs <qemu:env>
  UidRange uids;                      ///< regular users, as the planner checks owners
  Paths paths;                        ///< where lend directories are
};

/// The result of a transform.
struct AnnotateResult {
  std::string xml;                 ///< the new document (the input if nothing changed)
  bool changed = false;            ///< false: annotating again changes nothing
  std::string domain;              ///< the domain's <name>
  std::string uuid;                ///< its lower-case UUID
  std::vector<std::string> notes;  ///< one line each about what was added or left alone
  std::string socket;              ///< the socket's name
  std::string removed_plugin;      ///< --remove: the removed socket's plugin ("" if none)
  std::string removed_owner;       ///< --remove: its owner as written
  /// --remove: another socket of the domain still lends this plugin for this owner, so the
  /// policy allowance must stay.
  bool allowance_still_needed = false;
};

/// Adds (or updates) one <sockhook:socket> and gives QEMU the environment the plugin needs:
/// a native libvirt attribute where `ctx.libvirt_version` has one, else <qemu:env>. What it
/// adds is recorded in <sockhook:added> elements inside our metadata, so that `remove`
/// restores the document byte for byte. Formatting, comments and other namespaces are kept.
/// Throws Error ("<socket>: cannot ...: why") for anything it cannot do.
AnnotateResult annotate_xml(std::string_view xml, const AnnotateRequest& req,
                            const AnnotateContext& ctx);

}  // namespace sockhook
