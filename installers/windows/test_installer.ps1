# Installs the app with its setup program the way a user does (per user, silently here), runs the
# installed app's smoke test headless and on the Windows desktop, uninstalls it, and checks that
# the program folder, the Start menu entry and the uninstall entry are gone.
#
#   pwsh installers/windows/test_installer.ps1 PATH\qwen-local-chat-VERSION-windows-x64-setup.exe
param([Parameter(Mandatory)][string]$Setup)
$ErrorActionPreference = "Stop"

$app = Join-Path $env:LOCALAPPDATA "Programs\Qwen Local Chat"
$exe = Join-Path $app "qwen-local-chat.exe"
$shortcut = Join-Path $env:APPDATA "Microsoft\Windows\Start Menu\Programs\Qwen Local Chat.lnk"
$uninstallKey = "HKCU:\Software\Microsoft\Windows\CurrentVersion\Uninstall\{A1A6FAA8-C481-468A-9949-46A7B7768F7F}_is1"
# In GitHub Actions the screenshot is kept as an artifact from RUNNER_TEMP.
$temp = if ($env:RUNNER_TEMP) { $env:RUNNER_TEMP } else { $env:TEMP }
$work = New-Item -ItemType Directory -Path (Join-Path $temp "qlc-installer-test") -Force

function Invoke-Checked([string]$File, [string[]]$Arguments) {
    # Start-Process -Wait also waits for a GUI program (the app has no console).
    $process = Start-Process -FilePath $File -ArgumentList $Arguments -Wait -PassThru
    if ($process.ExitCode -ne 0) { throw "$File $Arguments exited with $($process.ExitCode)" }
}

function Invoke-SmokeTest([string]$Platform, [string[]]$Extra = @()) {
    $report = Join-Path $work "smoke-$Platform.txt"
    $env:QT_QPA_PLATFORM = $Platform
    try {
        $process = Start-Process -FilePath $exe -Wait -PassThru -ArgumentList (@(
            "--smoke-test", "--profile", "`"$(Join-Path $work 'profile')`"", "--report", "`"$report`"") + $Extra)
    } finally {
        Remove-Item Env:QT_QPA_PLATFORM
    }
    if (Test-Path $report) { Get-Content $report }
    if ($process.ExitCode -ne 0) { throw "smoke test on Qt's $Platform platform failed ($($process.ExitCode))" }
}

Write-Host "== Installing $Setup"
Invoke-Checked $Setup @("/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/CURRENTUSER", "/LOG=`"$(Join-Path $work 'setup.log')`"")
foreach ($path in @($exe, $shortcut)) { if (-not (Test-Path $path)) { throw "missing after install: $path" } }

Write-Host "== Smoke test, offscreen"
Invoke-SmokeTest "offscreen"
Write-Host "== Smoke test on the desktop, with a screenshot"
Invoke-SmokeTest "windows" @("--screenshot", "`"$(Join-Path $work 'screenshot.png')`"")

Write-Host "== Uninstalling"
Invoke-Checked (Join-Path $app "unins000.exe") @("/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART")
# The uninstaller hands over to a copy of itself and returns at once; wait for that copy.
$deadline = (Get-Date).AddMinutes(2)
while ((Test-Path $app) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 500 }
foreach ($path in @($app, $shortcut, $uninstallKey)) { if (Test-Path $path) { throw "left behind after uninstalling: $path" } }
Write-Host "== Passed: installed, smoke-tested, uninstalled without a trace"
