// Open a study in the OHIF Viewer with headless Chromium and take the screenshots
// that tests/browser/test_ohif.py checks.
//
// Usage: node ohif_check.mjs SPEC.json
// SPEC: {baseUrl, username, password, studyUID, segSeriesUID?, srSeriesUID?,
//        probes: [{name, world: [x, y, z]}], srProbes?: [...], outDir, chromium?, timeoutMs?,
//        ignoreHTTPSErrors? (true for the test's self-signed certificate)}
// Writes outDir/ct.png, outDir/seg.png, outDir/sr.png (for the series given) and
// prints one JSON object: per page the viewport, the canvas box in page pixels and
// the page position of every probe (patient coordinates, mm, mapped by cornerstone
// on the slice nearest the first probe), plus the segments with their displayed
// colours (SEG page) and the SR's measurement groups and drawn text (SR page).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = spec.timeoutMs ?? 60000;
const log = [];

// Runs in the page: jump to the slice nearest to probes[0], render, map probes.
async function showProbes(probes) {
  const cs = window.cornerstone;
  const vp = cs.getRenderingEngines()[0].getViewports()[0];
  const ids = vp.getImageIds();
  const target = probes[0].world;
  let best = -1;
  let bestDist = Infinity;
  ids.forEach((id, i) => {
    const plane = cs.metaData.get('imagePlaneModule', id);
    if (!plane) return;
    const [r, c] = [plane.rowCosines, plane.columnCosines];
    const n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    const d = [0, 1, 2].reduce((s, k) => s + n[k] * (target[k] - plane.imagePositionPatient[k]), 0);
    if (Math.abs(d) < bestDist) [best, bestDist] = [i, Math.abs(d)];
  });
  if (best < 0) throw new Error('no image plane metadata in the viewport');
  const rendered = new Promise(resolve => {
    const done = () => resolve();
    vp.element.addEventListener(cs.Enums.Events.IMAGE_RENDERED, done, { once: true });
    setTimeout(done, 5000);
  });
  await vp.setImageIdIndex(best);
  vp.render();
  await rendered;
  const box = vp.canvas.getBoundingClientRect();
  const mapped = probes.map(p => {
    const [x, y] = vp.worldToCanvas(p.world);
    return { name: p.name, x: box.left + x, y: box.top + y };
  });
  return {
    imageIndex: best,
    sliceDistanceMm: bestDist,
    imageCount: ids.length,
    viewportType: vp.type,
    canvas: { left: box.left, top: box.top, width: box.width, height: box.height },
    probes: mapped,
  };
}

// Runs in the page: the segmentations and their displayed colours.
function segmentationState() {
  const s = window.services.segmentationService;
  const vpId = window.cornerstone.getRenderingEngines()[0].getViewports()[0].id;
  const reps = s.getSegmentationRepresentations(vpId) || [];
  return reps.map(rep => ({
    type: rep.type,
    visible: rep.visible,
    label: s.getSegmentation(rep.segmentationId)?.label,
    segments: Object.entries(rep.segments || {}).map(([index, seg]) => ({
      index: Number(index),
      color: seg.color,
      visible: seg.visible,
      label: s.getSegmentation(rep.segmentationId)?.segments?.[index]?.label,
    })),
  }));
}

// Runs in the page: the SR as OHIF read it (its measurement groups with their labels
// and SCOORDs) and the annotation text drawn over the viewport.
function srState() {
  const sets = window.services.displaySetService.getActiveDisplaySets();
  const sr = sets.find(d => d.Modality === 'SR');
  const svgText = [...document.querySelectorAll('.viewport-element svg, svg.svg-layer')]
    .map(e => e.textContent).filter(t => t && t.trim()).join('\n');
  return {
    loaded: !!sr?.isLoaded,
    rehydratable: !!sr?.isRehydratable,
    groups: (sr?.measurements || []).map(m => ({
      trackingIdentifier: m.TrackingIdentifier,
      trackingUid: m.TrackingUniqueIdentifier,
      labels: m.labels,
      graphicTypes: (m.coords || []).map(c => c.GraphicType),
      referencedSop: m.ReferencedSOPInstanceUID,
    })),
    svgText,
  };
}

async function openViewer(context, query, ready) {
  const page = await context.newPage();
  page.lungsegOpenedAt = Date.now();
  page.on('pageerror', e => log.push(`pageerror: ${e.message}`));
  page.on('response', r => { if (r.status() >= 400) log.push(`http ${r.status()} ${r.url().split('?')[0]}`); });
  await page.goto(`${spec.baseUrl}/viewer?${query}`);
  await page.waitForFunction(() => {
    const cs = window.cornerstone;
    const vp = cs?.getRenderingEngines()[0]?.getViewports()[0];
    return !!(vp && vp.getImageIds && vp.getImageIds().length && vp.getCurrentImageId());
  }, null, { timeout });
  if (ready) await page.waitForFunction(ready, null, { timeout });
  // Let OHIF finish showing its initial image before the test scrolls.
  await page.waitForFunction(() => window.lungsegCurrentIndex() >= 0, null, { timeout });
  return page;
}

// Runs in the page: the index of the slice whose image is on screen (-1 while the
// requested image is still loading and the previous one is displayed).
function currentIndex() {
  const vp = window.cornerstone.getRenderingEngines()[0]?.getViewports()[0];
  if (!vp || !vp.csImage) return -1;
  const index = vp.getCurrentImageIdIndex();
  return vp.csImage.imageId === vp.getImageIds()[index] ? index : -1;
}

async function snap(page, name, probes) {
  // OHIF may still apply its own initial slice after a first jump: repeat until it holds.
  const opened = page.lungsegOpenedAt;
  let view;
  for (let attempt = 0; attempt < 10; attempt++) {
    view = await page.evaluate(showProbes, probes);
    const shown = await page.waitForFunction(
      want => window.lungsegCurrentIndex() === want, view.imageIndex, { timeout: 3000 },
    ).then(() => true, () => false);
    await page.waitForTimeout(500);
    if (shown && await page.evaluate(currentIndex) === view.imageIndex) break;
    log.push(`${name}: slice jump to ${view.imageIndex} not kept, retrying`);
  }
  view.finalImageIndex = await page.evaluate(currentIndex);
  const file = path.join(spec.outDir, `${name}.png`);
  await page.screenshot({ path: file });
  return { ...view, screenshot: file, pageMs: Date.now() - opened };
}

const started = Date.now();
const browser = await chromium.launch({ executablePath: spec.chromium ?? '/usr/bin/chromium', headless: true });
const result = { pages: {} };
let page;
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    httpCredentials: { username: spec.username, password: spec.password },
    ignoreHTTPSErrors: Boolean(spec.ignoreHTTPSErrors),
  });
  await context.addInitScript({ content: `window.lungsegCurrentIndex = ${currentIndex.toString()};` });
  const study = `StudyInstanceUIDs=${spec.studyUID}`;
  page = await openViewer(context, study);
  result.pages.ct = await snap(page, 'ct', spec.probes);
  await page.close();
  if (spec.segSeriesUID) {
    page = await openViewer(context, `${study}&initialSeriesInstanceUID=${spec.segSeriesUID}`, () => {
      const s = window.services?.segmentationService;
      const vp = window.cornerstone.getRenderingEngines()[0]?.getViewports()[0];
      return !!(s && vp && (s.getSegmentationRepresentations(vp.id) || []).length);
    });
    result.pages.seg = await snap(page, 'seg', spec.probes);
    result.pages.seg.segmentations = await page.evaluate(segmentationState);
    await page.close();
  }
  if (spec.srSeriesUID) {
    page = await openViewer(context, `${study}&initialSeriesInstanceUID=${spec.srSeriesUID}`, () => {
      const sr = window.services?.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SR');
      const drawn = [...document.querySelectorAll('svg')].some(e => /mm/.test(e.textContent || ''));
      return !!(sr?.isLoaded && sr.measurements?.length && drawn);
    });
    result.pages.sr = await snap(page, 'sr', spec.srProbes ?? spec.probes);
    Object.assign(result.pages.sr, await page.evaluate(srState));
    await page.close();
  }
} catch (err) {
  result.error = String(err && err.stack || err);
  if (page && !page.isClosed()) {
    const file = path.join(spec.outDir, 'error.png');
    await page.screenshot({ path: file }).then(() => { result.errorScreenshot = file; }, () => {});
  }
} finally {
  await browser.close();
}
result.log = log;
result.elapsedMs = Date.now() - started;
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
