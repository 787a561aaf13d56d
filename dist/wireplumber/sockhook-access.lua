-- sockhook: what a VM may reach of its owner's PipeWire through a context lend.
--
-- sockhook's holder creates a PipeWire security context per lent socket; every client that
-- connects through it carries pipewire.sec.engine = "org.sockhook" and pipewire.access =
-- "sockhook" (playback) or "sockhook-capture" (the domain's capture="yes"). PipeWire keeps
-- such clients from changing those keys. WirePlumber's stock policy knows neither access
-- value and grants such a client nothing, so without this script the lend fails closed.
--
-- This script grants, per such client: its own client object rwx, the client-node factory r
-- (to create its streams), its own nodes rwx, the Audio/Sink nodes r (with capture: the
-- Audio/Source nodes r too), the "settings" metadata r, and the core rx last (that lets the
-- client start). Nothing else:
-- no other client, no other application's stream, no device, no source without capture,
-- and nothing that appears later except new sinks (and sources) and the client's own nodes.
-- A linking hook keeps such a client's streams away from everything but a sink (with
-- capture: a sink or a source): in particular its capture streams never reach a source or a
-- sink's monitor, which WirePlumber would otherwise link whatever the client may see.
--
-- Installed by sockhook (install.sh, the Debian package) and loaded by the drop-in
-- sockhook.conf in wireplumber.conf.d; WirePlumber reads it at start.

lutils = require ("linking-utils")
log = Log.open_topic ("s-sockhook")

local ENGINE = "org.sockhook"

-- bound id of each sockhook client -> true if it may capture
local vm_clients = {}

local function is_source (media_class)
  return media_class == "Audio/Source" or media_class == "Audio/Source/Virtual"
end

local function visible_node (capture, client_id, props)
  local class = props ["media.class"] or ""
  if tonumber (props ["client.id"]) == client_id then
    return "rwx"
  elseif class == "Audio/Sink" then
    return "r"
  elseif capture and is_source (class) then
    return "r"
  end
  return nil
end

nodes_om = ObjectManager { Interest { type = "node" } }
-- What every VM client may read: the client-node factory (it makes its streams with it) and
-- the "settings" metadata (clock rate, quantum; read only). PipeWire's libjack (0.3.84 and
-- newer) binds the metadata in jack_client_open and syncs again, and that sync travels with
-- the pong that registers the client's node: jack_client_open then returns with the node's
-- transport, which carries the rate. Without any object to bind (a client here sees no port
-- and no metadata), its one sync is answered a round trip before the transport, and QEMU,
-- which asks for the rate right after jack_client_open, got -1 Hz in most starts and dropped
-- its JACK clients.
readable_om = ObjectManager {
  Interest { type = "factory", Constraint { "factory.name", "=", "client-node" } },
  Interest { type = "metadata", Constraint { "metadata.name", "=", "settings" } }
}
-- Every client, filtered in the handler on its full properties (as access-default.lua does):
-- the client global's own properties lack the engine.
clients_om = ObjectManager { Interest { type = "client" } }

local function grant_node (client, capture, node)
  local perms = visible_node (capture, client ["bound-id"], node.properties)
  if perms then
    client:update_permissions { [node ["bound-id"]] = perms }
  end
end

clients_om:connect ("object-added", function (_, client)
  local id = client ["bound-id"]
  local props = client ["properties"]
  if props ["pipewire.sec.engine"] ~= ENGINE then
    return
  end
  local access = props ["pipewire.access"]
  if access ~= "sockhook" and access ~= "sockhook-capture" then
    -- A context sockhook did not make (or an older one): it gets nothing.
    log:warning (client, "client " .. id .. " of engine " .. ENGINE ..
        " has access " .. tostring (access) .. "; granting nothing")
    return
  end
  local capture = access == "sockhook-capture"
  vm_clients [id] = capture
  client:update_permissions { ["any"] = "-" }
  client:update_permissions { [id] = "rwx" }
  for object in readable_om:iterate () do
    client:update_permissions { [object ["bound-id"]] = "r" }
  end
  for node in nodes_om:iterate () do
    grant_node (client, capture, node)
  end
  log:notice (client, "VM client " .. id .. " of " ..
      tostring (props ["pipewire.sockhook.domain"]) ..
      (capture and ": playback and capture" or ": playback only"))
  -- Last: the core lets the client start.
  client:update_permissions { [0] = "rx" }
end)

clients_om:connect ("object-removed", function (_, client)
  vm_clients [client ["bound-id"]] = nil
end)

nodes_om:connect ("object-added", function (_, node)
  for client in clients_om:iterate () do
    local capture = vm_clients [client ["bound-id"]]
    if capture ~= nil then
      grant_node (client, capture, node)
    end
  end
end)

-- The streams of a VM's client link only to what it may use: runs after the hooks that pick a
-- target, before the one that prepares the link.
SimpleEventHook {
  name = "sockhook/restrict-vm-links",
  after = { "linking/find-defined-target",
            "linking/find-filter-target",
            "linking/find-media-role-target",
            "linking/find-default-target",
            "linking/find-best-target",
            "linking/get-filter-from-target" },
  before = "linking/prepare-link",
  interests = {
    EventInterest {
      Constraint { "event.type", "=", "select-target" },
    },
  },
  execute = function (event)
    local _, _, si, si_props, _, target = lutils:unwrap_select_target_event (event)
    local node = si:get_associated_proxy ("node")
    local client_id = node and tonumber (node.properties ["client.id"])
    local capture = client_id and vm_clients [client_id]
    if capture == nil then
      return
    end
    local class = si_props ["media.class"] or ""
    local allowed
    if class:find ("^Stream/Output/") then
      allowed = target and target.properties ["media.class"] == "Audio/Sink"
    elseif class:find ("^Stream/Input/") then
      allowed = capture and target ~= nil and
          (is_source (target.properties ["media.class"]) or
           target.properties ["media.class"] == "Audio/Sink")
    else
      allowed = false
    end
    if not allowed then
      log:info (si, "not linking " .. tostring (si_props ["node.name"]) .. " (" .. class ..
          ") of a VM's client" .. (target and (" to " ..
          tostring (target.properties ["node.name"])) or ""))
      event:stop_processing ()
    end
  end
}:register ()

log:notice ("sockhook's rules for context lends are loaded")
readable_om:activate ()
nodes_om:activate ()
clients_om:activate ()
