<#
.SYNOPSIS
    Forward TCP port 12345 of this Windows host to the ClassCord VM (netsh portproxy)
    and allow it in Windows Defender Firewall.

.DESCRIPTION
    For a Windows host where the VM is NOT reached through a VirtualBox NAT rule:
    a host-only adapter (192.168.56.x), Hyper-V, WSL2, or a VMware VM whose NAT you
    do not want to edit. SLAM clients connect to THIS HOST's LAN address; Windows
    (service "IP Helper") relays each connection to the VM.

    Steps, each printed before it runs:
      1. checks: administrator, the "IP Helper" service, the port is free here;
      2. netsh interface portproxy add v4tov4 listenport=12345 listenaddress=0.0.0.0
             connectport=12345 connectaddress=<VM address>
      3. New-NetFirewallRule "ClassCord TCP 12345": inbound TCP 12345 allowed on
         every profile (Domain, Private AND Public: school networks are often Public).
    -Undo removes both. -FirewallOnly only adds the firewall rule: use it with a
    VirtualBox NAT rule (nat-virtualbox.sh), whose listener the firewall also blocks.

    The VM then sees every client as this host's address on the VM network (for
    example 192.168.56.1): allow that address in the VM's firewall
    (sudo scripts/vm-firewall.sh --source 192.168.56.1).

    Run in PowerShell as administrator:
        powershell -ExecutionPolicy Bypass -File .\scripts\nat-windows-portproxy.ps1 -VmAddress 192.168.56.101

.PARAMETER VmAddress
    The VM's address as this host reaches it (in the VM: ip -4 addr).

.PARAMETER Port
    Port SLAM clients use on this host (default 12345).

.PARAMETER VmPort
    Port in the VM (default 12345).

.PARAMETER ListenAddress
    Host address to listen on (default 0.0.0.0: every address).

.PARAMETER Undo
    Remove the port proxy and the firewall rule.

.PARAMETER FirewallOnly
    Only add (or with -Undo remove) the Windows Defender Firewall rule.

.PARAMETER DryRun
    Print the commands, change nothing.

.EXAMPLE
    .\scripts\nat-windows-portproxy.ps1 -VmAddress 192.168.56.101

.EXAMPLE
    .\scripts\nat-windows-portproxy.ps1 -VmAddress 192.168.56.101 -DryRun

.EXAMPLE
    .\scripts\nat-windows-portproxy.ps1 -Undo

.EXAMPLE
    .\scripts\nat-windows-portproxy.ps1 -FirewallOnly
#>
[CmdletBinding()]
param(
    [string]$VmAddress = "",
    [ValidateRange(1, 65535)][int]$Port = 12345,
    [ValidateRange(1, 65535)][int]$VmPort = 12345,
    [string]$ListenAddress = "0.0.0.0",
    [switch]$Undo,
    [switch]$FirewallOnly,
    [switch]$DryRun,
    [switch]$Help
)

Set-StrictMode -Version Latest
$ErrorActionPreference = "Stop"

if ($Help) {
    Get-Help -Name $PSCommandPath -Detailed
    exit 0
}

$RuleName = "ClassCord TCP $Port"

function Write-Step([string]$Text) {
    Write-Host "+ $Text"
}

function Stop-WithError([string]$Text) {
    Write-Host "nat-windows-portproxy: $Text" -ForegroundColor Red
    exit 1
}

# netsh is a native program: it does not throw, it sets $LASTEXITCODE.
function Invoke-Netsh([string[]]$Arguments) {
    Write-Step ("netsh " + ($Arguments -join " "))
    if ($DryRun) { return }
    $output = & netsh @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) {
        Stop-WithError ("netsh failed: " + ($output -join " "))
    }
}

function Test-IPv4([string]$Text) {
    $parsed = $null
    return [System.Net.IPAddress]::TryParse($Text, [ref]$parsed) -and
        $parsed.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetwork
}

function Get-OurProxy {
    # Lines of "netsh interface portproxy show v4tov4": address port address port
    $lines = & netsh interface portproxy show v4tov4 2>$null
    foreach ($line in $lines) {
        $fields = -split $line
        if ($fields.Count -eq 4 -and $fields[1] -eq "$Port" -and
            ($fields[0] -eq $ListenAddress -or $fields[0] -eq "*")) {
            return $line.Trim()
        }
    }
    return $null
}

function Remove-FirewallRule {
    $rule = Get-NetFirewallRule -DisplayName $RuleName -ErrorAction SilentlyContinue
    if ($null -ne $rule) {
        Write-Step "Remove-NetFirewallRule -DisplayName '$RuleName'"
        if (-not $DryRun) { Remove-NetFirewallRule -DisplayName $RuleName }
    } else {
        Write-Host "no firewall rule '$RuleName'"
    }
}

function Add-FirewallRule {
    Remove-FirewallRule
    Write-Step "New-NetFirewallRule -DisplayName '$RuleName' -Direction Inbound -Protocol TCP -LocalPort $Port -Action Allow -Profile Any"
    if (-not $DryRun) {
        New-NetFirewallRule -DisplayName $RuleName -Direction Inbound -Protocol TCP `
            -LocalPort $Port -Action Allow -Profile Any | Out-Null
    }
    $public = @(Get-NetConnectionProfile -ErrorAction SilentlyContinue |
        Where-Object { $_.NetworkCategory -eq "Public" })
    foreach ($netProfile in $public) {
        Write-Host ("note: '" + $netProfile.InterfaceAlias +
            "' is a Public network; the rule covers it (-Profile Any).")
    }
}

function Show-LanAddresses {
    Write-Host ""
    Write-Host "Give the SLAM students this host's LAN address, port ${Port}:"
    $addresses = @(Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue |
        Where-Object {
            $_.IPAddress -notlike "127.*" -and $_.IPAddress -notlike "169.254.*" -and
            $_.InterfaceAlias -notmatch "VirtualBox|VMware|vEthernet|Loopback|WSL"
        })
    foreach ($address in $addresses) {
        Write-Host ("    " + $address.IPAddress + "  (" + $address.InterfaceAlias + ")")
    }
    Write-Host "Test from a SLAM PC: Test-NetConnection <address> -Port $Port"
}

# --- checks ---------------------------------------------------------------------

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$isAdmin = ([Security.Principal.WindowsPrincipal]$identity).IsInRole(
    [Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $isAdmin -and -not $DryRun) {
    Stop-WithError ("run PowerShell as administrator (right-click > Run as administrator). " +
        "Without admin rights on this PC, use VirtualBox's NAT forwarding instead " +
        "(scripts/nat-virtualbox.sh needs none), and ask the teacher for the firewall rule.")
}

# --- undo -------------------------------------------------------------------------

if ($Undo) {
    if (-not $FirewallOnly) {
        if ($null -ne (Get-OurProxy)) {
            Invoke-Netsh @("interface", "portproxy", "delete", "v4tov4",
                "listenport=$Port", "listenaddress=$ListenAddress")
        } else {
            Write-Host "no port proxy on ${ListenAddress}:$Port"
        }
    }
    Remove-FirewallRule
    Write-Host "done: port $Port is no longer forwarded nor allowed."
    exit 0
}

if ($FirewallOnly) {
    Add-FirewallRule
    Show-LanAddresses
    exit 0
}

# --- add --------------------------------------------------------------------------

if (-not (Test-IPv4 $VmAddress)) {
    Stop-WithError "give the VM's IPv4 address: -VmAddress 192.168.56.101 (in the VM: ip -4 addr)"
}

# portproxy is run by the "IP Helper" service.
$helper = Get-Service -Name iphlpsvc -ErrorAction SilentlyContinue
if ($null -eq $helper) {
    Stop-WithError "the 'IP Helper' service (iphlpsvc) is missing: portproxy cannot work here"
}
if ($helper.Status -ne "Running") {
    Write-Step "Set-Service iphlpsvc -StartupType Automatic; Start-Service iphlpsvc"
    if (-not $DryRun) {
        Set-Service -Name iphlpsvc -StartupType Automatic
        Start-Service -Name iphlpsvc
    }
}

$existing = Get-OurProxy
if ($null -eq $existing) {
    $busy = @(Get-NetTCPConnection -State Listen -LocalPort $Port -ErrorAction SilentlyContinue)
    foreach ($listener in $busy) {
        $owner = Get-Process -Id $listener.OwningProcess -ErrorAction SilentlyContinue
        $name = if ($null -ne $owner) { $owner.ProcessName } else { "pid " + $listener.OwningProcess }
        Stop-WithError ("port $Port is already in use on this host by $name " +
            "(a VirtualBox NAT rule? VirtualBox listens there itself): remove it or use -Port")
    }
} else {
    Write-Host "replacing the existing port proxy: $existing"
    Invoke-Netsh @("interface", "portproxy", "delete", "v4tov4",
        "listenport=$Port", "listenaddress=$ListenAddress")
}

Write-Step "Test-NetConnection $VmAddress -Port $VmPort"
$reachable = Test-NetConnection -ComputerName $VmAddress -Port $VmPort `
    -InformationLevel Quiet -WarningAction SilentlyContinue
if (-not $reachable) {
    Write-Host ("warning: the VM does not answer on ${VmAddress}:$VmPort from this host. " +
        "Is the server running on 0.0.0.0, and does the VM's firewall allow this host? " +
        "Continuing: the forward works as soon as it does.") -ForegroundColor Yellow
}

Invoke-Netsh @("interface", "portproxy", "add", "v4tov4",
    "listenport=$Port", "listenaddress=$ListenAddress",
    "connectport=$VmPort", "connectaddress=$VmAddress")
Add-FirewallRule

Write-Host ""
Write-Host "done: ${ListenAddress}:$Port on this host -> ${VmAddress}:$VmPort"
Write-Host "In the VM, clients arrive from this host's address on the VM network: allow it in ufw."
Show-LanAddresses
Write-Host "Undo: .\scripts\nat-windows-portproxy.ps1 -Undo"
