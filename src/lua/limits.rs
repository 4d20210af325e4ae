//! Time and memory limits on Lua. Every hook call and every package script
//! runs under `scriptTimeoutSecs` and `luaMemoryBytes`, set when the call
//! starts and lifted when it ends (nested calls share the outer budget).
//! Time spent blocked counts: `os.execute` and `io.popen` are replaced by
//! versions that wait no longer than what is left, and the instruction hook
//! notices the deadline as soon as Lua runs again. `os.exit` inside a limited
//! call is an error; at the top of a `copkg run` script it is the script's
//! exit code.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, Value, VmState};

use super::LuaError;

/// Default time limit of one limited call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
/// Default memory limit of one limited call, on top of what the state holds.
pub const DEFAULT_MEMORY: usize = 256 << 20;
/// How often (in VM instructions) the deadline is checked.
const CHECK_EVERY: u32 = 1000;
/// Most output `io.popen` keeps.
const POPEN_LIMIT: u64 = 16 << 20;

/// The limits of the call in progress, if any.
#[derive(Debug, Default)]
struct Budget {
    /// When the outermost limited call must end.
    deadline: Option<Instant>,
    /// What is running, for messages (`hook `clean_logs``).
    what: String,
    /// Its time limit, for messages.
    timeout: Duration,
    /// Its memory limit, for messages.
    memory: usize,
    /// Limited calls in progress (nested ones share the outer budget).
    depth: u32,
}

/// Limits set on a state that has no settings (a hook child gets the
/// parent's limits this way).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CallLimits {
    /// Time limit of one limited call.
    pub timeout: Duration,
    /// Memory limit of one limited call.
    pub memory: usize,
}

impl CallLimits {
    /// The limits a state applies: those set on it, else its settings', else
    /// the defaults.
    pub fn of(lua: &Lua) -> CallLimits {
        if let Some(limits) = lua.app_data_ref::<CallLimits>() {
            return *limits;
        }
        lua.app_data_ref::<crate::settings::Settings>().map_or(
            CallLimits {
                timeout: DEFAULT_TIMEOUT,
                memory: DEFAULT_MEMORY,
            },
            |s| CallLimits {
                timeout: s.script_timeout,
                memory: s.lua_memory_bytes,
            },
        )
    }
}

/// The limits to apply.
fn configured(lua: &Lua) -> (Duration, usize) {
    let limits = CallLimits::of(lua);
    (limits.timeout, limits.memory)
}

fn over_time(budget: &Budget) -> String {
    format!(
        "{} exceeded its time limit of {} s (scriptTimeoutSecs)",
        budget.what,
        budget.timeout.as_secs_f64()
    )
}

/// The time left in the current limited call; `None` when there is none.
fn remaining(lua: &Lua) -> Result<Option<Duration>, mlua::Error> {
    let Some(budget) = lua.app_data_ref::<Budget>() else {
        return Ok(None);
    };
    match budget.deadline {
        None => Ok(None),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                Err(mlua::Error::RuntimeError(over_time(&budget)))
            } else {
                Ok(Some(deadline - now))
            }
        }
    }
}

/// Installs the instruction hook and the bounded `os.execute`, `io.popen`
/// and `os.exit`.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    lua.set_app_data(Budget::default());
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(CHECK_EVERY),
        |lua, _| {
            remaining(lua)?;
            Ok(VmState::Continue)
        },
    )?;
    let os: mlua::Table = lua.globals().get("os")?;
    os.set("execute", lua.create_function(execute)?)?;
    os.set("exit", lua.create_function(exit)?)?;
    let capture = lua.create_function(capture)?;
    lua.load(POPEN).set_name("=copkg").call::<()>(capture)?;
    Ok(())
}

/// `io.popen(cmd, "r")` on top of a bounded capture: the command runs to
/// its end (or the deadline) and its output is read back as from a file.
const POPEN: &str = r##"
local capture = ...
io.popen = function(cmd, mode)
  if mode ~= nil and mode ~= "r" then
    error("io.popen: only mode \"r\" is supported in copkg", 2)
  end
  local out, ok, how, code = capture(cmd)
  local pos = 1
  local f = {}
  local function one(fmt)
    if type(fmt) == "number" then
      if pos > #out then return nil end
      local s = out:sub(pos, pos + fmt - 1)
      pos = pos + #s
      return s
    end
    fmt = tostring(fmt or "l"):gsub("^%*", "")
    local kind = fmt:sub(1, 1)
    if kind == "a" then
      local s = out:sub(pos)
      pos = #out + 1
      return s
    elseif kind == "n" then
      local s, e = out:find("^%s*[-+]?[%d%.xXa-fA-FpP]+", pos)
      if not s then return nil end
      pos = e + 1
      return tonumber(out:sub(s, e))
    elseif kind == "l" or kind == "L" then
      if pos > #out then return nil end
      local e = out:find("\n", pos, true)
      local line
      if e then
        line = kind == "l" and out:sub(pos, e - 1) or out:sub(pos, e)
        pos = e + 1
      else
        line = out:sub(pos)
        pos = #out + 1
      end
      return line
    end
    error("io.popen: bad read format " .. fmt, 3)
  end
  function f:read(...)
    local n = select("#", ...)
    if n == 0 then return one("l") end
    local results = {}
    for i = 1, n do
      results[i] = one((select(i, ...)))
      if results[i] == nil then return table.unpack(results, 1, i) end
    end
    return table.unpack(results, 1, n)
  end
  function f:lines(fmt)
    return function() return one(fmt or "l") end
  end
  function f:close()
    if ok then return true, how, code end
    return nil, how, code
  end
  return f
end
"##;

/// Runs `sh -c cmd` in its own process group, no longer than the time left;
/// returns its exit status as Lua's `os.execute` does.
fn run_shell(
    lua: &Lua,
    cmd: &str,
    stdout: Stdio,
) -> mlua::Result<(std::process::Child, Option<Duration>)> {
    let limit = remaining(lua)?;
    let child = Command::new("/bin/sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0)
        .spawn()
        .map_err(|e| mlua::Error::RuntimeError(format!("cannot run /bin/sh: {e}")))?;
    Ok((child, limit))
}

/// Waits for `child` until the deadline; past it, kills its process group.
fn wait_bounded(
    lua: &Lua,
    child: &mut std::process::Child,
    limit: Option<Duration>,
) -> mlua::Result<std::process::ExitStatus> {
    let deadline = limit.map(|l| Instant::now() + l);
    let waited = crate::process::wait_child(child, deadline)
        .map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
    if let Some(status) = waited {
        return Ok(status);
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    // The deadline has passed: this names the call that overran.
    remaining(lua)?;
    Err(mlua::Error::RuntimeError(
        "a command overran its time limit".to_owned(),
    ))
}

/// Lua's `(true|nil, "exit"|"signal", code)` for an exit status.
fn status_values(status: std::process::ExitStatus) -> (Option<bool>, &'static str, i64) {
    match (status.code(), status.signal()) {
        (Some(code), _) => ((code == 0).then_some(true), "exit", i64::from(code)),
        (_, Some(signal)) => (None, "signal", i64::from(signal)),
        _ => (None, "exit", 1),
    }
}

/// `os.execute([cmd])`.
fn execute(lua: &Lua, cmd: Option<String>) -> mlua::Result<(Option<bool>, &'static str, i64)> {
    let Some(cmd) = cmd else {
        return Ok((Some(true), "exit", 0));
    };
    let (mut child, limit) = run_shell(lua, &cmd, Stdio::inherit())?;
    let status = wait_bounded(lua, &mut child, limit)?;
    Ok(status_values(status))
}

/// What `io.popen` reads: the command's output and how it ended.
fn capture(
    lua: &Lua,
    cmd: String,
) -> mlua::Result<(mlua::LuaString, Option<bool>, &'static str, i64)> {
    let (mut child, limit) = run_shell(lua, &cmd, Stdio::piped())?;
    let mut pipe = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut pipe).take(POPEN_LIMIT).read_to_end(&mut out);
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        out
    });
    let status = wait_bounded(lua, &mut child, limit);
    let out = if status.is_ok() {
        reader.join().unwrap_or_default()
    } else {
        Vec::new()
    };
    let (ok, how, code) = status_values(status?);
    Ok((lua.create_string(out)?, ok, how, code))
}

/// `os.exit([code])`: an error in a hook or package script; at the top of a
/// `copkg run` script, the script's exit code.
fn exit(lua: &Lua, code: Option<Value>) -> mlua::Result<()> {
    if let Some(budget) = lua.app_data_ref::<Budget>()
        && budget.depth > 0
    {
        return Err(mlua::Error::RuntimeError(format!(
            "{} called os.exit, which hooks and package scripts may not (raise an error instead)",
            budget.what
        )));
    }
    let code = match code {
        None | Some(Value::Boolean(true)) => 0,
        Some(Value::Boolean(false)) => 1,
        Some(Value::Integer(n)) => n as i32,
        Some(Value::Number(n)) => n as i32,
        Some(other) => {
            return Err(mlua::Error::RuntimeError(format!(
                "os.exit: bad exit code (a {})",
                other.type_name()
            )));
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Runs `call` under the time and memory limits, as `what` (`hook
/// `clean_logs``, a script path). Nested calls run under the outer budget.
pub(crate) fn limited<R>(
    lua: &Lua,
    what: impl Into<String>,
    timeout: Option<Duration>,
    call: impl FnOnce() -> Result<R, LuaError>,
) -> Result<R, LuaError> {
    let outermost = lua.app_data_ref::<Budget>().is_none_or(|b| b.depth == 0);
    let (default_timeout, memory) = configured(lua);
    let timeout = timeout.unwrap_or(default_timeout);
    if outermost {
        let mut budget = lua.app_data_mut::<Budget>();
        if let Some(budget) = budget.as_deref_mut() {
            budget.deadline = Some(Instant::now() + timeout);
            budget.what = what.into();
            budget.timeout = timeout;
            budget.memory = memory;
        }
        drop(budget);
        let _ = lua.set_memory_limit(lua.used_memory().saturating_add(memory));
    }
    if let Some(mut budget) = lua.app_data_mut::<Budget>() {
        budget.depth += 1;
    }
    let result = call();
    let mut memory_message = None;
    if let Some(mut budget) = lua.app_data_mut::<Budget>() {
        budget.depth -= 1;
        if budget.depth == 0 {
            budget.deadline = None;
            memory_message = Some(format!(
                "{} exceeded its memory limit of {} bytes (luaMemoryBytes)",
                budget.what, budget.memory
            ));
        }
    }
    if outermost {
        let _ = lua.set_memory_limit(0);
        lua.gc_collect().ok();
    }
    match result {
        Err(LuaError::Script { message, code }) if message.contains("not enough memory") => {
            Err(LuaError::Script {
                message: memory_message.unwrap_or(message),
                code,
            })
        }
        other => other,
    }
}

/// `copkg.api_version`: the version of the Lua API this copkg offers.
pub const API_VERSION: i64 = 1;

/// `copkg.require_api(n)`: refuses to go on under a copkg whose API is older.
pub(crate) fn require_api(lua: &Lua, wanted: i64) -> mlua::Result<()> {
    if wanted > API_VERSION || wanted < 1 {
        return Err(super::raise(
            lua,
            "require_api",
            format!(
                "this script needs copkg Lua API {wanted}; this copkg ({}) offers API {API_VERSION}",
                env!("CARGO_PKG_VERSION")
            ),
            crate::exit::ExitCode::Usage,
        ));
    }
    Ok(())
}
