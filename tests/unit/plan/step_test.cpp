#include "plan/step.hpp"

#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "base/error.hpp"

namespace sockhook {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("Every step describes itself, its undo and its JSON form") {
  const std::vector<std::pair<Step, std::string>> steps = {
      {MakeLendDir{"/run/sockhook/u", 64055}, "make_lend_dir"},
      {VerifySource{"/run/user/1000", "pipewire-0", 1000, 5}, "verify_source"},
      {CreateTarget{"/run/sockhook/u/t"}, "create_target"},
      {BindMount{"/run/user/1000/pipewire-0", "/run/sockhook/u/t"}, "bind_mount"},
      {GrantAcl{"/run/user/1000", 64055, "x", true, true}, "grant_acl"},
      {ChangeGroup{"/run/user/1000/pipewire-0", 64055}, "change_group"},
      {CopyFile{"/home/alice", "c", "/run/sockhook/u/c", 1000, 64055, 256, true}, "copy_file"},
      {StartProxy{"/run/sockhook/u/t", "/run/user/1000/w", 1000, 1000, 64055, 64055, "7:/machine"},
       "start_proxy"},
      {StartContext{"/run/sockhook/u/pipewire-0", "/run/user/1000/pipewire-0", 1000, 1000, 64055,
                    64055, "win11", "0f0e", true},
       "start_context"},
  };
  REQUIRE(steps.size() == std::variant_size_v<Step>);
  for (const auto& [step, action] : steps) {
    CAPTURE(action);
    auto what = describe(step);
    CHECK_FALSE(what.empty());
    // Each description names the path it acts on.
    CHECK((what.find("/run/sockhook/u") != std::string::npos ||
           what.find("/run/user/1000") != std::string::npos));
    auto undo = describe_undo(step);
    if (std::holds_alternative<VerifySource>(step)) {
      CHECK(undo.empty());
    } else {
      CHECK_FALSE(undo.empty());
    }
    CHECK(to_json(step)["action"] == action);
    // The journal's form reads back to the same step, field for field.
    pugi::xml_document doc;
    write_step(doc.append_child("socket"), step);
    auto back = read_step(doc.child("socket").child("step"));
    CHECK(to_json(back) == to_json(step));
  }
  CHECK(describe(steps[4].first) ==
        "add ACL entry u:64055:x on directory /run/user/1000 (only if its mode and ACL deny it)");
  CHECK(describe(steps[6].first) ==
        "copy /home/alice/c as uid 1000 (resolved beneath /home/alice: no symlinks, no mount "
        "crossing, at most 256 bytes) to /run/sockhook/u/c (owner uid 64055, 0400) if it exists");
  CHECK(describe_undo(steps[3].first) ==
        "unmount /run/sockhook/u/t (if it still holds that inode)");
}

TEST_CASE("A journal step with an unknown action or a bad number is refused") {
  pugi::xml_document doc;
  SUBCASE("unknown action") {
    doc.load_string("<step action='format_disk'/>");
    CHECK_THROWS_WITH_AS(read_step(doc.child("step")),
                         "corrupt journal: unknown step action 'format_disk'", Error);
  }
  SUBCASE("a missing field") {
    doc.load_string("<step action='create_target'/>");
    CHECK_THROWS_WITH_AS(read_step(doc.child("step")), "corrupt journal: <step> lacks path", Error);
  }
  SUBCASE("a number out of range") {
    doc.load_string("<step action='make_lend_dir' path='/x' qemu-uid='99999999999'/>");
    CHECK_THROWS_WITH_AS(read_step(doc.child("step")), "corrupt journal: qemu-uid is out of range",
                         Error);
  }
  SUBCASE("a context behind a proxy: its flags read back, and an older journal lacks them") {
    StartContext context{"/run/sockhook/u/wayland-0.context",
                         "/run/user/1000/wayland-1",
                         1000,
                         1000,
                         64055,
                         64055,
                         "vm",
                         "0f0e",
                         false,
                         "wayland"};
    context.behind_proxy = true;
    StartProxy proxy{
        "/run/sockhook/u/wayland-0", context.listen_path, 1000, 1000, 64055, 64055, "7:/machine"};
    proxy.source_fd = true;
    for (const Step& step : {Step{context}, Step{proxy}}) {
      write_step(doc.append_child("socket"), step);
      auto back = read_step(doc.last_child().child("step"));
      CHECK(to_json(back) == to_json(step));
    }
    CHECK(doc.last_child().child("step").attribute("source-fd").as_string() == std::string("yes"));
    CHECK(describe(Step{context})
              .starts_with("listen on /run/sockhook/u/wayland-0.context (owner uid 1000, 0600: "
                           "only the proxy in "
                           "front of it reaches it) and start a holder as uid 1000"));
    CHECK(contains(describe(Step{proxy}),
                   "connects to the context socket /run/sockhook/u/wayland-0.context through a "
                   "descriptor the hook hands it (fd 4) per client"));
    pugi::xml_document old;
    old.load_string(
        "<s><step action='start_context' listen='/l' source='/s' owner='1000' owner-gid='1000' "
        "qemu-uid='64055' qemu-gid='64055' domain='d' uuid='u' capture='no'/>"
        "<step action='start_proxy' listen='/l' source='/s' owner='1000' owner-gid='1000' "
        "qemu-uid='64055' qemu-gid='64055' peer-domain='7:/machine'/></s>");
    auto c = std::get<StartContext>(read_step(old.child("s").first_child()));
    CHECK_FALSE(c.private_socket());
    CHECK(c.socket_uid() == 64055);
    CHECK_FALSE(std::get<StartProxy>(read_step(old.child("s").last_child())).context_source());
    // What serves each listening path: the proxy at the lend, the holder behind it.
    const std::vector<Step> steps{context, proxy};
    CHECK(serving_step(steps, proxy.listen_path) == &steps[1]);
    CHECK(serving_step(steps, context.listen_path) == &steps[0]);
    CHECK(serving_step(steps, "/run/sockhook/u/elsewhere") == nullptr);
  }
  SUBCASE("an optional field stays absent") {
    doc.load_string(
        "<step action='copy_file' base='/b' relative='s' target='/t' owner='1000' qemu-uid='64055' "
        "max-bytes='256' optional='no'/>");
    auto step = read_step(doc.child("step"));
    REQUIRE(std::holds_alternative<CopyFile>(step));
    CHECK_FALSE(std::get<CopyFile>(step).content.has_value());
  }
}

}  // namespace
}  // namespace sockhook
