/** @type {AppTypes.Config} */
// OHIF Viewer configuration for lungseg.
//
// The viewer is served by nginx (deploy/start-viewer.sh) on the same origin as Orthanc's
// DICOMweb (nginx forwards /dicom-web to Orthanc), so no CORS is involved and
// the data source roots are derived from the page's own origin.
// Served in place of the app-config.js shipped in the @ohif/app package.
(function () {
  const dicomWebRoot = window.location.origin + '/dicom-web';

  window.config = {
    name: 'lungseg',
    routerBasename: null,
    extensions: [],
    modes: [],
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    // Load SEG and SR without asking first.
    disableConfirmationPrompts: true,
    measurementTrackingMode: 'simplified',
    // Research software: the SEG/SR themselves carry the research-use labelling.
    investigationalUseDialog: { option: 'never' },
    // No onboarding tour popping over the viewport.
    customizationService: {
      global: {
        'ohif.tours': { $set: [] },
      },
    },
    maxNumRequests: {
      interaction: 100,
      thumbnail: 5,
      prefetch: 10,
    },
    showErrorDetails: 'always',
    defaultDataSourceName: 'orthanc',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'orthanc',
        configuration: {
          friendlyName: 'lungseg Orthanc (DICOMweb)',
          name: 'orthanc',
          qidoRoot: dicomWebRoot,
          wadoRoot: dicomWebRoot,
          wadoUriRoot: dicomWebRoot,
          // Saving a segmentation stores it back over STOW-RS (docs/retraining.md).
          stowRoot: dicomWebRoot,
          qidoSupportsIncludeField: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          // Orthanc's DICOMweb plugin answers multipart/related requests only.
          omitQuotationForMultipartRequest: true,
          bulkDataURI: {
            enabled: true,
          },
        },
      },
    ],
    httpErrorHandler: error => {
      // Orthanc answers 401 when the basic-auth credentials are missing or wrong.
      const status = error && error.status;
      if (status === 401 || status === 403) {
        console.error('DICOMweb request refused (' + status + '): check the Orthanc user and password');
      } else {
        console.warn('DICOMweb request failed', status);
      }
    },
  };
})();
