#include "sys/acl.hpp"

#include <sys/acl.h>
#include <sys/xattr.h>

#include <memory>

#include <acl/libacl.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

constexpr const char* kAccessXattr = "system.posix_acl_access";

struct AclFree {
  void operator()(void* p) const { ::acl_free(p); }
};
using AclPtr = std::unique_ptr<struct __acl_ext, AclFree>;

AclPtr get_acl(const std::string& path) {
  AclPtr acl(::acl_get_file(path.c_str(), ACL_TYPE_ACCESS));
  if (!acl) throw_errno("cannot read the ACL");
  return acl;
}

void set_acl(const std::string& path, const AclPtr& acl) {
  if (::acl_valid(acl.get()) != 0) throw Error("the resulting ACL would be invalid");
  // Safe: callers pass /proc/self/fd/N of a verified inode (Fd::proc_path), never a user path.
  if (::acl_set_file(path.c_str(), ACL_TYPE_ACCESS, acl.get()) != 0)
    throw_errno("cannot set the ACL");
}

acl_tag_t tag_of(acl_entry_t e) {
  acl_tag_t tag = ACL_UNDEFINED_TAG;
  ::acl_get_tag_type(e, &tag);
  return tag;
}

Perms perms_of(acl_entry_t e) {
  acl_permset_t ps = nullptr;
  ::acl_get_permset(e, &ps);
  Perms p = 0;
  if (::acl_get_perm(ps, ACL_READ) == 1) p |= 4;
  if (::acl_get_perm(ps, ACL_WRITE) == 1) p |= 2;
  if (::acl_get_perm(ps, ACL_EXECUTE) == 1) p |= 1;
  return p;
}

void set_perms(acl_entry_t e, Perms p) {
  acl_permset_t ps = nullptr;
  ::acl_get_permset(e, &ps);
  ::acl_clear_perms(ps);
  if (p & 4) ::acl_add_perm(ps, ACL_READ);
  if (p & 2) ::acl_add_perm(ps, ACL_WRITE);
  if (p & 1) ::acl_add_perm(ps, ACL_EXECUTE);
  ::acl_set_permset(e, ps);
}

/// The qualifier (uid or gid) of a named entry.
unsigned qualifier_of(acl_entry_t e) {
  auto* q = static_cast<unsigned*>(::acl_get_qualifier(e));
  if (!q) return static_cast<unsigned>(-1);
  unsigned v = *q;
  ::acl_free(q);
  return v;
}

/// Calls f(entry, tag) for each entry; stops when f returns false.
template <typename F>
void for_each_entry(const AclPtr& acl, F&& f) {
  acl_entry_t e = nullptr;
  for (int r = ::acl_get_entry(acl.get(), ACL_FIRST_ENTRY, &e); r == 1;
       r = ::acl_get_entry(acl.get(), ACL_NEXT_ENTRY, &e)) {
    if (!f(e, tag_of(e))) break;
  }
}

acl_entry_t find_entry(const AclPtr& acl, acl_tag_t wanted, unsigned qualifier = 0) {
  acl_entry_t found = nullptr;
  for_each_entry(acl, [&](acl_entry_t e, acl_tag_t tag) {
    if (tag != wanted) return true;
    if ((tag == ACL_USER || tag == ACL_GROUP) && qualifier_of(e) != qualifier) return true;
    found = e;
    return false;
  });
  return found;
}

acl_entry_t create_entry(AclPtr& acl, acl_tag_t tag) {
  acl_t raw = acl.release();
  acl_entry_t e = nullptr;
  int rc = ::acl_create_entry(&raw, &e);
  acl.reset(raw);
  if (rc != 0) throw_errno("cannot add an ACL entry");
  ::acl_set_tag_type(e, tag);
  return e;
}

}  // namespace

Perms parse_perms(std::string_view text) {
  Perms p = 0;
  for (char c : text) {
    if (c == 'r')
      p |= 4;
    else if (c == 'w')
      p |= 2;
    else if (c == 'x')
      p |= 1;
    else if (c != '-')
      throw Error("bad permissions '" + std::string(text) + "'");
  }
  return p;
}

std::string perms_text(Perms p) {
  return {(p & 4) ? 'r' : '-', (p & 2) ? 'w' : '-', (p & 1) ? 'x' : '-'};
}

AclState read_acl_state(const std::string& path, uid_t uid) {
  AclState state;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno("cannot stat");
  state.mode = st.st_mode & 07777;
  ssize_t n = ::getxattr(path.c_str(), kAccessXattr, nullptr, 0);
  if (n >= 0) {
    std::string bytes(static_cast<std::size_t>(n), '\0');
    n = ::getxattr(path.c_str(), kAccessXattr, bytes.data(), bytes.size());
    if (n < 0) throw_errno("cannot read the ACL");
    bytes.resize(static_cast<std::size_t>(n));
    state.xattr = std::move(bytes);
  } else if (errno != ENODATA) {
    throw_errno("cannot read the ACL");
  }
  auto acl = get_acl(path);
  if (auto e = find_entry(acl, ACL_USER, uid)) state.entry = perms_of(e);
  if (auto e = find_entry(acl, ACL_MASK)) state.mask = perms_of(e);
  return state;
}

bool acl_allows(const std::string& path, const struct stat& st, uid_t uid,
                const std::vector<gid_t>& groups, Perms wanted) {
  if (uid == 0) return true;
  auto acl = get_acl(path);
  Perms mask = 7;
  if (auto e = find_entry(acl, ACL_MASK)) mask = perms_of(e);
  auto has = [&](Perms p) { return (p & wanted) == wanted; };
  auto in_groups = [&](gid_t g) {
    for (auto x : groups)
      if (x == g) return true;
    return false;
  };
  // POSIX.1e: the first class that matches decides; it never falls through to a later one.
  if (uid == st.st_uid)
    return has(find_entry(acl, ACL_USER_OBJ) ? perms_of(find_entry(acl, ACL_USER_OBJ)) : 0);
  if (auto e = find_entry(acl, ACL_USER, uid)) return has(perms_of(e) & mask);
  bool group_matched = false, group_granted = false;
  for_each_entry(acl, [&](acl_entry_t e, acl_tag_t tag) {
    bool match = (tag == ACL_GROUP_OBJ && in_groups(st.st_gid)) ||
                 (tag == ACL_GROUP && in_groups(static_cast<gid_t>(qualifier_of(e))));
    if (match) {
      group_matched = true;
      group_granted |= has(perms_of(e) & mask);
    }
    return true;
  });
  if (group_matched) return group_granted;
  auto other = find_entry(acl, ACL_OTHER);
  return has(other ? perms_of(other) : 0);
}

namespace {

std::vector<std::string> gains_of(const AclPtr& acl, uid_t uid, Perms perms) {
  std::vector<std::string> gains;
  auto mask = find_entry(acl, ACL_MASK);
  // No mask: the ACL is minimal (named entries need one); the new mask is the owning group's
  // perms plus ours, so the owning group keeps exactly what it had.
  if (!mask) return gains;
  Perms withheld = perms & ~perms_of(mask);
  if (withheld == 0) return gains;
  for_each_entry(acl, [&](acl_entry_t e, acl_tag_t tag) {
    std::string who;
    if (tag == ACL_USER) {
      if (qualifier_of(e) == uid) return true;
      who = "user:" + std::to_string(qualifier_of(e));
    } else if (tag == ACL_GROUP) {
      who = "group:" + std::to_string(qualifier_of(e));
    } else if (tag == ACL_GROUP_OBJ) {
      who = "group:";
    } else {
      return true;
    }
    if (perms_of(e) & withheld) gains.push_back(who + ":" + perms_text(perms_of(e)));
    return true;
  });
  return gains;
}

}  // namespace

std::vector<std::string> acl_grant_gains(const std::string& path, uid_t uid, Perms perms) {
  return gains_of(get_acl(path), uid, perms);
}

std::string acl_gains_refusal(uid_t uid, Perms perms, const std::vector<std::string>& gains) {
  std::string list;
  for (const auto& g : gains) list += (list.empty() ? "" : ", ") + g;
  return "granting u:" + std::to_string(uid) + ":" + perms_text(perms) +
         " would widen the ACL mask and so also give " + list +
         " what the mask now withholds; sockhook never widens what others get (use method proxy)";
}

void acl_grant_user(const std::string& path, uid_t uid, Perms perms) {
  auto acl = get_acl(path);
  if (auto gains = gains_of(acl, uid, perms); !gains.empty())
    throw Error(acl_gains_refusal(uid, perms, gains));
  auto entry = find_entry(acl, ACL_USER, uid);
  if (!entry) {
    entry = create_entry(acl, ACL_USER);
    if (::acl_set_qualifier(entry, &uid) != 0) throw_errno("cannot set the ACL qualifier");
    set_perms(entry, perms);
  } else {
    set_perms(entry, perms_of(entry) | perms);
  }
  // Widen the mask by exactly what we grant. Recomputing it (acl_calc_mask, as setfacl does)
  // could silently widen other named entries that the owner had masked.
  if (auto mask = find_entry(acl, ACL_MASK)) {
    set_perms(mask, perms_of(mask) | perms);
  } else {
    auto group = find_entry(acl, ACL_GROUP_OBJ);
    Perms g = group ? perms_of(group) : 0;
    set_perms(create_entry(acl, ACL_MASK), g | perms);
  }
  set_acl(path, acl);
}

void acl_revoke_user(const std::string& path, uid_t uid, const AclState& prior) {
  auto acl = get_acl(path);
  if (auto entry = find_entry(acl, ACL_USER, uid)) {
    if (prior.entry) {
      set_perms(entry, *prior.entry);
    } else if (::acl_delete_entry(acl.get(), entry) != 0) {
      throw_errno("cannot remove the ACL entry");
    }
  }
  bool named = false;
  for_each_entry(acl, [&](acl_entry_t, acl_tag_t tag) {
    named |= tag == ACL_USER || tag == ACL_GROUP;
    return true;
  });
  auto mask = find_entry(acl, ACL_MASK);
  if (prior.mask) {
    if (!mask) mask = create_entry(acl, ACL_MASK);
    set_perms(mask, *prior.mask);
  } else if (named) {
    // Someone else added named entries since; they need a mask. Keep theirs as computed.
    acl_t raw = acl.release();
    ::acl_calc_mask(&raw);
    acl.reset(raw);
  } else if (mask && ::acl_delete_entry(acl.get(), mask) != 0) {
    throw_errno("cannot remove the ACL mask");
  }
  // A minimal ACL (no mask, no named entries) makes the kernel drop the xattr and fold the
  // entries back into the mode bits: exactly the state before the grant.
  set_acl(path, acl);
}

std::string acl_text(const std::string& path) {
  auto acl = get_acl(path);
  char* text = ::acl_to_any_text(acl.get(), nullptr, '\n', TEXT_NUMERIC_IDS);
  if (!text) throw_errno("cannot format the ACL");
  std::string out(text);
  ::acl_free(text);
  return out;
}

}  // namespace sockhook
