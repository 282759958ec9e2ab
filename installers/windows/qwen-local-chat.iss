; Inno Setup 6 script: the Windows installer of a bundle made by installers/build_bundle.py.
;
;   iscc /DAppVersion=0.1.0 /DVariant=windows-cpu /DBundleDir=C:\...\dist\qwen-local-chat
;        /DIconFile=C:\...\icons\app.ico /DOutputDir=C:\...\build\installers installers\windows\qwen-local-chat.iss
;
; A per-user install: no administrator rights, the app in %LOCALAPPDATA%\Programs\Qwen Local Chat,
; a Start menu entry, an optional desktop shortcut and an uninstaller listed under Settings > Apps.
; Both variants (windows-cpu, windows-cuda) share one AppId and folder, so installing one replaces
; the other. The bundle needs no separate runtime: llama.cpp is built without OpenMP
; (variants.toml), PyInstaller bundles the Visual C++ runtime DLLs, and the CUDA variant's bundle
; carries the CUDA runtime and cuBLAS DLLs (the NVIDIA driver is the user's).
; Conversations and settings live elsewhere (%LOCALAPPDATA%\QwenLocalChat) and survive uninstalling.

#if !Defined(AppVersion) || !Defined(Variant) || !Defined(BundleDir) || !Defined(IconFile) || !Defined(OutputDir)
  #error Define AppVersion, Variant, BundleDir, IconFile and OutputDir (see the top of this file)
#endif
#if Variant == "windows-cuda"
  #define PackageName "qwen-local-chat-cuda"
#elif Variant == "windows-cpu"
  #define PackageName "qwen-local-chat"
#else
  #error Variant must be windows-cpu or windows-cuda
#endif
#define AppName "Qwen Local Chat"
#define AppExe "qwen-local-chat.exe"

[Setup]
AppId={{A1A6FAA8-C481-468A-9949-46A7B7768F7F}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Qwen Local Chat maintainers
; With lowest privileges {autopf} is the user's own %LOCALAPPDATA%\Programs.
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename={#PackageName}-{#AppVersion}-windows-x64-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An update must not leave an older version's files beside the new ones: Python would load them.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
