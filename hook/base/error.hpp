#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sockhook {

/// The one error type below main: a message, and the errno that caused it (0 if none).
/// Layers add context (`with_context`, `in_context`) and let it travel up to where a stage ends:
/// a step of a transaction, a socket of a prepare, an entry of an undo, a check of doctor, a
/// command of the CLI, a fact that may be missing. There `attempt` (below) turns it into a
/// value: code below main catches through `attempt`, and the hook's entry (run_hook) is its one
/// error exit. The hook's stages that must never throw (release, forget, reconnect, refresh)
/// end in `problem_of`, which takes every std::exception.
class Error : public std::runtime_error {
 public:
  /// An error with a message and no errno.
  explicit Error(const std::string& what, int err = 0);

  /// The errno that caused this error, or 0.
  int err() const { return err_; }

  /// A new error whose message is "context: <this message>", same errno.
  Error with_context(const std::string& context) const;

 private:
  int err_;
};

/// Throws an Error whose message is `what: strerror(errno)`, keeping errno.
[[noreturn]] void throw_errno(const std::string& what);

/// Throws an Error whose message is `what: strerror(err)`.
[[noreturn]] void throw_errno(const std::string& what, int err);

/// What `attempt(f)` gives back: `value`, what `f` returned (std::monostate for void), or
/// `error`, what it threw. `unexpected` marks an exception that was not an Error (a bug, or
/// std::bad_alloc), caught only where the caller asked for every std::exception.
template <class T>
struct Attempt {
  std::optional<T> value;
  std::optional<Error> error;
  bool unexpected = false;

  /// True if `f` returned.
  explicit operator bool() const { return value.has_value(); }
  /// The error's message ("" when `f` returned).
  std::string what() const { return error ? error->what() : std::string(); }
};

/// Runs `f` at a stage edge and returns what it returned or the `Caught` it threw (Error, or
/// std::exception where nothing may escape), as a value. Anything else propagates.
template <class Caught = Error, class F>
auto attempt(F&& f) {
  using R = std::invoke_result_t<F>;
  using T = std::conditional_t<std::is_void_v<R>, std::monostate, std::decay_t<R>>;
  Attempt<T> out;
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<F>(f)();
      out.value.emplace();
    } else {
      out.value.emplace(std::forward<F>(f)());
    }
  } catch (const Caught& e) {
    if constexpr (std::is_same_v<Caught, Error>) {
      out.error = e;
    } else if (const auto* error = dynamic_cast<const Error*>(&e)) {
      out.error = *error;
    } else {
      out.error.emplace(e.what());
      out.unexpected = true;
    }
  }
  return out;
}

/// What `f` returned, or nullopt if it threw Error: for a fact that may be missing.
template <class F>
auto value_or_none(F&& f) {
  return attempt(std::forward<F>(f)).value;
}

/// Runs `f`; an Error it throws travels on as "context: <message>".
template <class F>
auto in_context(const std::string& context, F&& f) {
  auto out = attempt(std::forward<F>(f));
  if (out.error) throw out.error->with_context(context);
  if constexpr (!std::is_void_v<std::invoke_result_t<F>>) return std::move(*out.value);
}

/// The message of what `f` threw (every std::exception: the never-throw stages), or nullopt.
template <class F>
std::optional<std::string> problem_of(F&& f) {
  auto out = attempt<std::exception>(std::forward<F>(f));
  if (out) return std::nullopt;
  return out.what();
}

}  // namespace sockhook
