# The "Views" examples of the README, as written there (the `echo "### ..."` lines only mark
# where each example's output starts, for tests/cli/view_test.ts). `_all_docs` is the CLI.

echo "### install scripts without node-gyp"
# Packages whose latest version runs an install script but does not depend on node-gyp
_all_docs view define has-install-scripts \
  --select 'name, versions[dist-tags.latest].scripts.preinstall as preinstall, versions[dist-tags.latest].scripts.install as install, versions[dist-tags.latest].scripts.postinstall as postinstall' \
  --where 'versions[dist-tags.latest].scripts.preinstall != null || versions[dist-tags.latest].scripts.install != null || versions[dist-tags.latest].scripts.postinstall != null'
_all_docs view define uses-node-gyp --select name \
  --where 'versions[dist-tags.latest].dependencies["node-gyp"] != null || versions[dist-tags.latest].devDependencies["node-gyp"] != null'
_all_docs view join has-install-scripts uses-node-gyp --diff

echo "### dependency edges"
# The dependency edges of every package's latest version, for a graph database
_all_docs view define edges \
  --select 'name, versions[dist-tags.latest].dependencies | keys as deps, versions[dist-tags.latest].devDependencies | keys as devDeps'
_all_docs view query edges | jq -c '.name as $src |
  (.deps[] | {from: $src, to: ., type: "runtime"}),
  (.devDeps[] | {from: $src, to: ., type: "dev"})'

echo "### dependents"
# How many packages depend on each package (their latest versions), with map-reduce
cat > dependents.js <<'JS'
export function map(doc, emit) {
  const latest = doc.versions?.[doc["dist-tags"]?.latest];
  for (const dep of Object.keys(latest?.dependencies ?? {})) emit(dep, doc.name);
}
export function reduce(dep, dependents) {
  return dependents.length;
}
JS
_all_docs view run dependents.js

echo "### lockfile specs"
# When each version a lockfile pins was published, and its integrity
jq -c '.packages | to_entries[] | select(.key != "")
  | {name: (.value.name // (.key | sub(".*node_modules/"; ""))), version: .value.version}' \
  package-lock.json > specs.ndjson
_all_docs view enrich -i specs.ndjson \
  --add 'time[.version] as publishedAt' \
  --add 'versions[.version].dist.integrity as integrity'

echo "### not in the private registry"
# Packages of the default registry that a private registry does not have
_all_docs view define public-pkgs --select name
_all_docs view define private-pkgs --registry https://registry.example.test/ --select name
_all_docs view join public-pkgs private-pkgs --diff
