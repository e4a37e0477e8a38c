"""Checks what ./pack.sh wrote, as a user (and nuget.org) would see it: for each package, its nuspec (licence
expression, readme, repository), the assembly with its XML docs under lib/net10.0, the package readme, and a
symbol package holding the portable PDB. With --sourcelink REPO_URL COMMIT, also that each PDB's SourceLink map
points at that repository's raw files at that commit (pack from a clone whose origin is REPO_URL).
Prints one line a finding; exits 1 when anything is missing.
    python3 .ci/package-check.py FEED [--sourcelink https://github.com/owner/name COMMIT]"""
import re, sys, zipfile, os

feed = sys.argv[1]
sourcelink = sys.argv[3:5] if len(sys.argv) > 4 and sys.argv[2] == "--sourcelink" else None
packages = {"ErrorMonitor": "ErrorMonitor", "ErrorMonitor.Web": "ErrorMonitor.Web", "ErrorMonitor.Core": "ErrorMonitor.Core"}
problems = []


def find(pkg, ext):
    pattern = re.compile(re.escape(pkg) + r"\.\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?\." + ext + "$")
    hits = [f for f in os.listdir(feed) if pattern.match(f)]
    return os.path.join(feed, hits[0]) if hits else None


for pkg, asm in packages.items():
    nupkg, snupkg = find(pkg, "nupkg"), find(pkg, "snupkg")
    if not nupkg:
        problems.append(f"{pkg}: no .nupkg")
        continue
    with zipfile.ZipFile(nupkg) as z:
        names = set(z.namelist())
        nuspec = z.read(f"{pkg}.nuspec").decode("utf-8")
        for needed in [f"lib/net10.0/{asm}.dll", f"lib/net10.0/{asm}.xml", "README.md"]:
            if needed not in names:
                problems.append(f"{pkg}: {needed} missing from the package")
        if "README.md" in names and len(z.read("README.md")) < 200:
            problems.append(f"{pkg}: README.md is nearly empty")
        if '<license type="expression">MIT</license>' not in nuspec:
            problems.append(f"{pkg}: no MIT licence expression in the nuspec")
        if "<readme>README.md</readme>" not in nuspec:
            problems.append(f"{pkg}: the nuspec names no readme")
        if '<repository type="git"' not in nuspec:
            problems.append(f"{pkg}: the nuspec has no repository")
        if sourcelink and f'url="{sourcelink[0]}' not in nuspec and f'commit="{sourcelink[1]}"' not in nuspec:
            problems.append(f"{pkg}: the nuspec's repository is not {sourcelink[0]} at {sourcelink[1]}")
        if f"lib/net10.0/{asm}.xml" in names and b"<member name=" not in z.read(f"lib/net10.0/{asm}.xml"):
            problems.append(f"{pkg}: the XML docs are empty")
    if not snupkg:
        problems.append(f"{pkg}: no .snupkg")
        continue
    with zipfile.ZipFile(snupkg) as z:
        pdb = f"lib/net10.0/{asm}.pdb"
        if pdb not in z.namelist():
            problems.append(f"{pkg}: {pdb} missing from the symbol package")
            continue
        data = z.read(pdb)
        if not data.startswith(b"BSJB"):
            problems.append(f"{pkg}: {pdb} is not a portable PDB")
        if sourcelink:
            owner_name = sourcelink[0].rstrip("/").removeprefix("https://github.com/").removesuffix(".git")
            expected = f"https://raw.githubusercontent.com/{owner_name}/{sourcelink[1]}/".encode()
            if expected not in data:
                problems.append(f"{pkg}: {pdb} has no SourceLink map to {expected.decode()}")

for p in problems:
    print(p)
print(f"packages: {len(packages)} checked, {len(problems)} problems" + (" (with SourceLink)" if sourcelink else ""))
sys.exit(1 if problems else 0)
