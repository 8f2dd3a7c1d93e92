# The device's web page (served by iotlib.web_page at GET /): one HTML file with its CSS and
# JavaScript inline, no outside resource. A bytes constant so it is frozen into the firmware
# with the rest of iotlib and served from flash. ASCII only; keep it small (tests/web checks
# the size).
PAGE = rb'''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Relays</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#234;color:#fff;padding:8px 14px;display:flex;gap:12px;align-items:center}
header h1{font-size:17px;margin:0;flex:1}
main{padding:10px 14px;display:grid;gap:12px;max-width:900px}
section{background:#fff;border-radius:6px;padding:8px 12px;box-shadow:0 1px 2px #0002}
h2{font-size:14px;margin:2px 0 8px}
table{border-collapse:collapse;width:100%}
td,th{padding:4px 6px;text-align:left;border-bottom:1px solid #eee}
.st{font-weight:bold;padding:1px 6px;border-radius:4px;color:#fff;background:#999}
.st.HIGH{background:#2a7}
button{margin:0 2px;cursor:pointer}
#msg{min-height:1.2em;font-weight:bold}
#msg.err{color:#b22}
#conn{font-size:12px}
.bad{color:#b22}
ul{margin:0;padding-left:18px}
#log li{font:12px monospace}
#alarms:empty::before,#log:empty::before{content:"none yet";color:#888}
</style></head><body>
<header><h1>Relays</h1><span id="who"></span><span id="conn">not connected</span>
<button id="logout" hidden>Forget token</button></header>
<main>
<div id="msg"></div>
<section id="login"><h2>Device API token</h2>
<form id="tokform"><input id="token" type="password" size="50" autocomplete="off"
 placeholder="paste a token minted by the platform"> <button id="use">Use token</button></form>
</section>
<section id="relays-box" hidden><h2>Relays</h2>
<table><thead><tr><th>Relay</th><th>State</th><th>Pin</th><th>Switches</th><th>Last change</th>
<th></th></tr></thead><tbody id="relays"></tbody></table>
<p id="pulse-row" hidden>Pulse length <input id="pulse" type="number" min="1" value="1000"
 style="width:7em"> ms</p></section>
<section id="locks-box" hidden><h2>Interlock groups</h2><ul id="locks"></ul></section>
<section id="status-box" hidden><h2>Device</h2>
<table><tr><th>Health</th><td id="health">?</td></tr><tr><th>Ready</th><td id="ready">?</td></tr>
<tr><th>Uptime</th><td id="uptime">?</td></tr><tr><th>Free heap</th><td id="heap">?</td></tr></table>
</section>
<section id="alarms-box" hidden><h2>Last alarms</h2><ul id="alarms"></ul></section>
<section id="log-box" hidden><h2>Events</h2><ul id="log"></ul></section>
</main>
<script>
"use strict";
var $=function(i){return document.getElementById(i)};
var S={relays:{},can:[],ctl:null,seq:0,retry:0};
function el(t,txt,cls){var e=document.createElement(t);if(txt!=null)e.textContent=txt;if(cls)e.className=cls;return e}
function msg(t,err){var m=$("msg");m.textContent=t||"";m.className=err?"err":""}
function tok(){return sessionStorage.getItem("relays.token")}
function when(t){return t?new Date(t*1000).toISOString().replace("T"," ").slice(0,19)+"Z":"-"}
function api(method,path,body){
 var h={"Authorization":"Bearer "+tok()};if(body)h["Content-Type"]="application/json";
 return fetch(path,{method:method,headers:h,body:body?JSON.stringify(body):undefined,cache:"no-store"})
  .then(function(r){return r.json().catch(function(){return{}}).then(function(j){return{status:r.status,json:j}})})}
function explain(r){var j=r.json||{};return (j.message||"request failed")+" ("+(j.error||r.status)+(j.field?", "+j.field:"")+")"}
function row(d){
 var tr=$("relay-"+d.name);
 if(!tr){tr=el("tr");tr.id="relay-"+d.name;
  ["name","state","pin","switches","last",""].forEach(function(c){var td=el("td");td.className="c-"+(c||"act");tr.appendChild(td)});
  tr.querySelector(".c-name").textContent=d.name;
  if(S.can.indexOf(d.name)>=0){var a=tr.querySelector(".c-act");
   [["on","On"],["off","Off"],["toggle","Toggle"],["pulse","Pulse"]].forEach(function(b){
    var x=el("button",b[1]);x.dataset.act=b[0];x.dataset.relay=d.name;x.onclick=act;a.appendChild(x)});
   $("pulse-row").hidden=false}
  $("relays").appendChild(tr)}
 var r=S.relays[d.name]=Object.assign(S.relays[d.name]||{},d);
 tr.dataset.state=r.state;
 var st=tr.querySelector(".c-state");st.textContent=r.state==="HIGH"?"ON":"OFF";st.className="c-state st "+r.state;
 tr.querySelector(".c-pin").textContent=r.pin;
 tr.querySelector(".c-switches").textContent=r.switches;
 tr.querySelector(".c-last").textContent=when(r.last_change)}
function act(e){
 var b=e.target,n=b.dataset.relay,a=b.dataset.act,body={state:"TOGGLE"};
 if(a==="on")body={state:"HIGH"};if(a==="off")body={state:"LOW"};
 if(a==="pulse")body={state:"HIGH",pulse_ms:parseInt($("pulse").value,10)};
 api("POST","/gpio/"+encodeURIComponent(n),body).then(function(r){
  if(r.status===200||r.status===202){row(r.json);msg(r.status===202?n+": on after the interlock dead time":"")}
  else msg(n+": "+explain(r),true)},function(){msg("the device did not answer",true)})}
function status(s){S.st=s;
 $("ready").textContent=s.ready?"ready":"not ready: "+s.missing.join(", ");$("ready").className=s.ready?"":"bad";
 $("uptime").textContent=s.uptime_s+" s";$("heap").textContent=s.heap_free+" bytes"}
function alarm(a){var li=el("li",when(a.t)+" "+a.severity+" "+a.key+": "+a.message);var u=$("alarms");u.insertBefore(li,u.firstChild);while(u.children.length>8)u.removeChild(u.lastChild)}
function log(t){var u=$("log");u.insertBefore(el("li",t),u.firstChild);while(u.children.length>20)u.removeChild(u.lastChild)}
function hello(h){
 S.can=h.can_switch;S.relays={};$("relays").textContent="";$("pulse-row").hidden=true;
 h.relays.forEach(row);
 $("locks").textContent="";h.interlocks.forEach(function(g){$("locks").appendChild(el("li",g.relays.join(" / ")+" (dead time "+g.dead_ms+" ms)"))});
 $("locks-box").hidden=!h.interlocks.length;
 status(h.status);
 $("alarms").textContent="";(h.alarms||[]).forEach(alarm);$("alarms-box").hidden=!h.alarms;
 $("who").textContent=(h.subject||"?")+(h.can_switch.length?"":" (read only)");
 ["relays-box","status-box","log-box"].forEach(function(i){$(i).hidden=false});
 S.seq=h.seq;S.full=!!h.alarms}
function ev(name,id,data){
 var d=JSON.parse(data);
 if(name==="hello")return hello(d);
 if(name==="status")return status(d);
 if(name==="end"){msg("the device ended the stream: "+d.message+" ("+d.error+")",true);stop();return}
 if(id){var n=parseInt(id,10);if(S.full&&n>S.seq+1)log("missed "+(n-S.seq-1)+" events");S.seq=n}
 if(name==="relay"){row({name:d.relay,state:d.state,switches:d.switches,last_change:d.last_change});
  log(when(d.t)+" "+d.relay+" "+d.state+(d.subject?" by "+d.subject:"")+" ("+d.cause+")")}
 else if(name==="input")log(when(d.t)+" input "+d.input+" "+(d.value?"active":"inactive"));
 else if(name==="alarm"){alarm(d);log(when(d.t)+" alarm "+d.key)}
 else if(name==="ready"){S.st.ready=d.ready;S.st.missing=d.missing;status(S.st);log(when(d.t)+(d.ready?" ready":" not ready"))}}
function stop(){if(S.ctl){S.ctl.abort();S.ctl=null}$("conn").textContent="not connected"}
function connect(){
 if(!tok())return;stop();var ctl=S.ctl=new AbortController();$("conn").textContent="connecting";
 fetch("/events",{headers:{"Authorization":"Bearer "+tok()},cache:"no-store",signal:ctl.signal}).then(function(r){
  if(!r.ok)return r.json().catch(function(){return{}}).then(function(j){
   var t=r.status===401||r.status===403?"token refused: ":"the device refused the event stream: ";
   msg(t+explain({status:r.status,json:j}),true);S.ctl=null;$("conn").textContent="not connected";
   if(r.status===401||r.status===403)$("login").hidden=false;else again()});
  $("login").hidden=true;$("logout").hidden=false;msg("");$("conn").textContent="live";S.retry=0;$("health").textContent="ok";
  var rd=r.body.getReader(),dec=new TextDecoder(),buf="";
  function pump(){return rd.read().then(function(x){
   if(x.done){if(S.ctl===ctl){S.ctl=null;$("conn").textContent="reconnecting";again()}return}
   buf+=dec.decode(x.value,{stream:true});var i;
   while((i=buf.indexOf("\n\n"))>=0){var blk=buf.slice(0,i);buf=buf.slice(i+2);var name="message",id=null,data="";
    blk.split("\n").forEach(function(l){var k=l.indexOf(": ");if(k<0)return;var f=l.slice(0,k),v=l.slice(k+2);
     if(f==="event")name=v;else if(f==="id")id=v;else if(f==="data")data+=v});
    if(data)ev(name,id,data)}
   return pump()})}
  return pump()}).catch(function(e){if(S.ctl===ctl){S.ctl=null;$("conn").textContent="reconnecting";$("health").textContent="no answer";again()}})}
function again(){S.retry=Math.min(S.retry+1,5);setTimeout(connect,1000*S.retry)}
$("tokform").onsubmit=function(e){e.preventDefault();var t=$("token").value.trim();if(!t){msg("paste a token first",true);return}
 sessionStorage.setItem("relays.token",t);$("token").value="";connect()};
$("logout").onclick=function(){sessionStorage.removeItem("relays.token");stop();location.reload()};
(function(){var m=/[#&]token=([^&]+)/.exec(location.hash);
 if(m){sessionStorage.setItem("relays.token",decodeURIComponent(m[1]));history.replaceState(null,"",location.pathname)}
 if(tok())connect()})();
</script></body></html>
'''
