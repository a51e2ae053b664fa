-- Argo CD health check for mlsteward.io/Monitor (resource.customizations.health.mlsteward.io_Monitor).
-- Reads only status.observedGeneration and status.conditions, which the operator writes the
-- Kubernetes way (docs/operator.md). Tested against status objects from a real API server in
-- tests/cluster/chart/test_gitops.py.
local hs = {}
local generation = obj.metadata.generation or 0
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    -- A condition stamped for an older generation says nothing about this one.
    if condition.observedGeneration == nil or condition.observedGeneration >= generation then
      conditions[condition.type] = condition
    end
  end
end
local function is_true(name)
  return conditions[name] ~= nil and conditions[name].status == "True"
end
local function text(name, fallback)
  local condition = conditions[name]
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end
if is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = text("Stalled", "Stalled")
  return hs
end
if is_true("Drifting") then
  hs.status = "Degraded"
  hs.message = text("Drifting", "Drift detected")
  return hs
end
if is_true("Degraded") then
  hs.status = "Degraded"
  hs.message = text("Degraded", "Performance or fairness outside its limits")
  return hs
end
if is_true("Reconciling") then
  hs.status = "Progressing"
  hs.message = text("Reconciling", "Reconciling")
  return hs
end
if is_true("Ready") then
  hs.status = "Healthy"
  hs.message = text("Ready", "Ready")
  return hs
end
hs.status = "Progressing"
hs.message = text("Ready", "Waiting for the Ready condition")
return hs
